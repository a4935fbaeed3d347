import type { Request } from 'express';

/** The client's address as the brute-force protection counts it (behind TRUST_PROXY, the forwarded one). */
export const clientIp = (req: Request): string => req.ip ?? req.socket.remoteAddress ?? 'unknown';
