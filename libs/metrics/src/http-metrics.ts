import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastHistogram } from './fast-histogram.js';
import { HTTP_BUCKETS, METRIC, type Metrics, UNMATCHED_ROUTE } from './metrics.js';

/** What Express leaves on a request once a route matched it. */
type RoutedRequest = IncomingMessage & { route?: { path?: unknown }; baseUrl?: string };

/**
 * Express middleware timing every request into `aperture_http_request_duration_seconds{method, route, status_code}`.
 * The route label is the matched route's template (`/api/v1/jobs/:id/status`, never the ids in the path), and one
 * label for every request no route matched (Nest's catch-all 404 included), so the series stay bounded whatever
 * clients send. Costs a timer and a Map update per request (FastHistogram): nothing leaves the process.
 */
export function httpMetricsMiddleware(metrics: Metrics): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  // Made at the first request, not here: an app built in preview mode (the OpenAPI writer) has no live providers.
  let histogram: FastHistogram<'method' | 'route' | 'status_code'> | null = null;
  const series = (): FastHistogram<'method' | 'route' | 'status_code'> =>
    (histogram ??= metrics.fastHistogram({
      name: METRIC.httpDuration,
      help: 'HTTP request duration by route template, method and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
    }));
  return (req, res, next) => {
    const t0 = process.hrtime.bigint();
    let done = false;
    const end = (): void => {
      if (done) return;
      done = true;
      const r = req as RoutedRequest;
      const path = r.route?.path;
      // A wildcard is Nest's catch-all that answers 404 for unknown paths under the prefix: no route matched.
      const route = typeof path === 'string' && !path.includes('*') ? `${r.baseUrl ?? ''}${path}` : UNMATCHED_ROUTE;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      series().observe([req.method ?? 'UNKNOWN', route, String(res.statusCode)], seconds);
    };
    res.once('finish', end);
    res.once('close', end);
    next();
  };
}
