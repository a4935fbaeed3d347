import { describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { allowLongWaits, appliedPreferWait, MAX_PREFER_WAIT_S, parsePreferWait } from './prefer-wait.js';

describe('parsePreferWait (RFC 7240 Prefer header)', () => {
  it.each<[string | string[] | undefined, number | null]>([
    [undefined, null],
    ['', null],
    ['wait=10', 10],
    ['wait=0', 0],
    ['WAIT=7', 7],
    ['Wait = 7', 7],
    ['  wait=5  ', 5],
    ['respond-async, wait=30', 30],
    ['respond-async,wait=30,handling=lenient', 30],
    ['handling=strict; foo=bar, wait=12; x=1', 12],
    ['wait="15"', 15],
    ['foo="a, wait=3", wait=9', 9], // a comma inside a quoted string does not split
    ['foo="a \\" , wait=3", wait=9', 9], // nor after an escaped quote
    [['respond-async', 'wait=4'], 4], // several Prefer headers
    ['wait=8, wait=20', 8], // only the first instance counts
    ['wait', null], // no value
    ['wait=', null],
    ['wait=-1', null],
    ['wait=1.5', null],
    ['wait=abc', null],
    ['wait=10s', null],
    ['wait=0x10', null],
    ['wait=abc, wait=5', null], // the first, malformed, is ignored, not replaced
    ['respond-async', null],
    ['waiting=5', null],
    ['nowait=5', null],
    ['wait=600', 600],
    ['wait=99999999999999999999999', MAX_PREFER_WAIT_S],
  ])('%j → %j', (header, expected) => {
    expect(parsePreferWait(header)).toBe(expected);
  });

  it('clamps the applied wait to 60 s', () => {
    expect(MAX_PREFER_WAIT_S).toBe(60);
    expect(appliedPreferWait('wait=600')).toBe(60);
    expect(appliedPreferWait('wait=60')).toBe(60);
    expect(appliedPreferWait('wait=59')).toBe(59);
    expect(appliedPreferWait('respond-async')).toBeNull();
  });

  it('lets the HTTP server hold a request past the longest wait', () => {
    const server = createServer();
    server.setTimeout(30_000);
    server.requestTimeout = 30_000;
    allowLongWaits(server);
    expect(server.timeout).toBe(0);
    expect(server.requestTimeout).toBeGreaterThan(MAX_PREFER_WAIT_S * 1000);
    const unlimited = createServer();
    unlimited.requestTimeout = 0;
    allowLongWaits(unlimited);
    expect(unlimited.requestTimeout).toBe(0);
  });
});
