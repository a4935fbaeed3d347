/** Units of a real length (fragment sizes, the calibration ball's radius); px means uncalibrated. */
export const LENGTH_UNITS = ['px', 'mm', 'cm', 'm', 'in'] as const;
export type LengthUnit = (typeof LENGTH_UNITS)[number];
