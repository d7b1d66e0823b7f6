// The quiet-server rule (ipvs/quiet-servers.ts) as a table: one row per case,
// each naming what the rule must flag.
import { describe, expect, it } from 'vitest';
import { decideQuietServers, MIN_EXPECTED_CONNECTIONS, MIN_SENT_CONNECTIONS, type QuietServerInput, type QuietServiceInput } from '../../src/ipvs/quiet-servers.js';

/** A server over a window of 6 readings: weight 1 throughout, no connections, nothing active unless said. */
function server(address: string, over: Partial<QuietServerInput> = {}): QuietServerInput {
  return { address, minWeight: 1, weight: 1, newConnections: 0, newOutPackets: 0, activeConnections: [0, 0, 0, 0, 0, 0], inactiveConnections: [0, 0, 0, 0, 0, 0], ...over };
}
const busy = (address: string, over: Partial<QuietServerInput> = {}): QuietServerInput =>
  server(address, { newConnections: 50, newOutPackets: 400, activeConnections: [3, 2, 4, 1, 2, 5], inactiveConnections: [9, 8, 7, 9, 8, 9], ...over });

function service(servers: QuietServerInput[], over: Partial<QuietServiceInput> = {}): QuietServiceInput {
  return { scheduler: 'wrr', persistent: false, forwarding: 'masq', servers, ...over };
}

type Row = [string, QuietServiceInput, Record<string, string>];

const rows: Row[] = [
  // no-connections
  ['one of three servers got none of 120 connections (share 40)', service([busy('a', { newConnections: 60 }), busy('b', { newConnections: 60 }), server('c')]), { c: 'no-connections' }],
  ['rr: one of two servers got none of 100', service([busy('a', { newConnections: 100 }), server('b')]), { b: 'no-connections' }],
  ['its share is below the minimum: not flagged', service([busy('a', { newConnections: 2 * MIN_EXPECTED_CONNECTIONS - 2 }), server('b')]), {}],
  ['its share is exactly the minimum: flagged', service([busy('a', { newConnections: 2 * MIN_EXPECTED_CONNECTIONS }), server('b')]), { b: 'no-connections' }],
  ['an idle service: nothing flagged', service([server('a'), server('b'), server('c')]), {}],
  ['a low weight makes a small share: not flagged', service([busy('a', { newConnections: 100, weight: 100, minWeight: 100 }), server('b', { weight: 1 })]), {}],
  ['weight 0 now: not eligible', service([busy('a', { newConnections: 100 }), server('b', { weight: 0, minWeight: 0 })]), {}],
  ['weight 0 at some reading of the window (just pooled): waits a full window', service([busy('a', { newConnections: 100 }), server('b', { minWeight: 0 })]), {}],
  ['re-created during the window (counters went back): not eligible', service([busy('a', { newConnections: 100 }), server('b', { newConnections: -5 })]), {}],
  ['sh: clients stick to a server by address', service([busy('a', { newConnections: 100 }), server('b')], { scheduler: 'sh' }), {}],
  ['mh: the same', service([busy('a', { newConnections: 100 }), server('b')], { scheduler: 'mh' }), {}],
  ['persistence: the same', service([busy('a', { newConnections: 100 }), server('b')], { persistent: true }), {}],
  ['a lone server has no siblings', service([server('a')]), {}],
  // no-replies (NAT)
  ['NAT: connections and not one packet back', service([busy('a'), busy('b', { newOutPackets: 0 })]), { b: 'no-replies' }],
  ['NAT: too few connections to tell', service([busy('a'), busy('b', { newConnections: MIN_SENT_CONNECTIONS - 1, newOutPackets: 0 })]), {}],
  ['NAT: nobody sends replies (the director cannot tell): nothing flagged', service([busy('a', { newOutPackets: 0 }), busy('b', { newOutPackets: 0 })]), {}],
  ['NAT: few replies are replies', service([busy('a'), busy('b', { newOutPackets: 1 })]), {}],
  ['NAT: a server answering RST sends packets back: not flagged', service([busy('a'), busy('b', { newOutPackets: 50 })]), {}],
  ['NAT on sh: no-replies still applies (it got connections)', service([busy('a'), busy('b', { newOutPackets: 0 })], { scheduler: 'sh' }), { b: 'no-replies' }],
  // not-established (DR, tunnel): a server that cannot answer leaves every connection in SYN_RECV
  ['DR, newer kernel: SYN_RECV counts as active, nothing ever closes (InActConn 0 each time)', service([busy('a'), busy('b', { activeConnections: [20, 21, 19, 20, 22, 20], inactiveConnections: [0, 0, 0, 0, 0, 0] })], { forwarding: 'droute' }), { b: 'not-established' }],
  ['DR, older kernel: SYN_RECV counts as inactive (ActiveConn 0 each time)', service([busy('a'), busy('b', { activeConnections: [0, 0, 0, 0, 0, 0], inactiveConnections: [20, 21, 19, 20, 22, 20] })], { forwarding: 'droute' }), { b: 'not-established' }],
  ['tunnel: the same', service([busy('a'), busy('b', { activeConnections: [0, 0, 0, 0, 0, 0], inactiveConnections: [20, 21, 19, 20, 22, 20] })], { forwarding: 'tunnel' }), { b: 'not-established' }],
  ['DR: both kinds at one reading is an answer', service([busy('a'), busy('b', { activeConnections: [20, 21, 19, 20, 22, 20], inactiveConnections: [0, 0, 1, 0, 0, 0] })], { forwarding: 'droute' }), {}],
  ['DR: siblings with long-lived connections only (none closed at a reading): nothing flagged', service([busy('a', { inactiveConnections: [3, 2, 0, 1, 1, 1] }), busy('b', { inactiveConnections: [0, 0, 0, 0, 0, 0] })], { forwarding: 'droute' }), {}],
  ['DR: short connections leave the siblings at ActiveConn 0 sometimes: nothing flagged', service([busy('a', { activeConnections: [1, 0, 2, 1, 1, 1] }), busy('b', { activeConnections: [0, 0, 0, 0, 0, 0] })], { forwarding: 'droute' }), {}],
  ['DR: outgoing packets are never seen and do not count', service([busy('a', { newOutPackets: 0 }), busy('b', { newOutPackets: 0 })], { forwarding: 'droute' }), {}],
  ['DR: too few connections to tell', service([busy('a'), busy('b', { newConnections: MIN_SENT_CONNECTIONS - 1, inactiveConnections: [0, 0, 0, 0, 0, 0] })], { forwarding: 'droute' }), {}],
  ['DR: no connections at all is no-connections', service([busy('a', { newConnections: 100 }), server('b')], { forwarding: 'droute' }), { b: 'no-connections' }],
  ['NAT: the connection states do not matter (replies tell)', service([busy('a'), busy('b', { inactiveConnections: [0, 0, 0, 0, 0, 0] })]), {}],
];

describe('decideQuietServers', () => {
  it.each(rows)('%s', (_name, input, expected) => {
    const verdicts = decideQuietServers(input);
    expect(Object.fromEntries(verdicts.map((v) => [v.address, v.reason]))).toEqual(expected);
    for (const v of verdicts) expect(v.detail.length).toBeGreaterThan(0);
  });

  it('says what it saw', () => {
    const [verdict] = decideQuietServers(service([busy('a', { newConnections: 100 }), server('b')]));
    expect(verdict?.detail).toBe("no new connection while the service's servers got 100 (its share by weight: 50)");
    const [dr] = decideQuietServers(service([busy('a'), busy('b', { inactiveConnections: [0, 0, 0, 0, 0, 0] })], { forwarding: 'droute' }));
    expect(dr?.detail).toBe('50 new connections, none completed (InActConn 0 at each of 6 readings), while its siblings had both established and closed ones');
  });
});
