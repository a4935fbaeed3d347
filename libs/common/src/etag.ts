import type { Request, Response } from 'express';

/**
 * Conditional GET: sets the strong ETag (quoted by the caller) and must-revalidate caching on the response, and
 * answers 304 when the request's If-None-Match names it (or is *). True: send no body.
 */
export function notModified(req: Request, res: Response, etag: string): boolean {
  res.setHeader('ETag', etag);
  res.setHeader('Cache-Control', 'private, max-age=0, must-revalidate');
  const inm = req.headers['if-none-match'];
  if (!inm || !inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*')) return false;
  res.status(304);
  return true;
}
