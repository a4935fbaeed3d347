const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are UUIDs; anything else cannot name a record, so lookups answer 404 without touching the database. */
export const isUuid = (s: string): boolean => UUID_RE.test(s);
