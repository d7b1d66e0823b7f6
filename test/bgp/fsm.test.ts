/**
 * The FSM step function: one test per (state, event) pair, each asserting
 * the next state and the exact actions, plus OPEN negotiation.
 */
import { describe, expect, test } from 'vitest';
import type { BgpMessage, OpenMessage } from '../../src/bgp/codec.js';
import {
  initialState,
  localOpen,
  negotiate,
  retryDelayMs,
  step,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
} from '../../src/bgp/fsm.js';
import { notification } from '../../src/bgp/notification.js';

const CONFIG: FsmConfig = {
  localAsn: 64600,
  routerId: '192.0.2.11',
  holdTimeSec: 90,
  peerAsn: 64512,
  families: [4, 6],
  connectRetryMs: 5000,
};

const PEER_OPEN: OpenMessage = {
  type: 'open',
  version: 4,
  myAs: 64512,
  holdTimeSec: 30,
  bgpId: '192.0.2.1',
  capabilities: [
    { kind: 'multiprotocol', afi: 1, safi: 1 },
    { kind: 'multiprotocol', afi: 2, safi: 1 },
    { kind: 'fourOctetAs', asn: 64512 },
  ],
};

const msg = (message: BgpMessage): FsmEvent => ({ type: 'message', message });

const EVENTS: Record<string, FsmEvent> = {
  start: { type: 'start' },
  stop: { type: 'stop', notification: notification(6, 2) },
  'timer connectRetry': { type: 'timer', timer: 'connectRetry' },
  'timer idleHold': { type: 'timer', timer: 'idleHold' },
  'timer hold': { type: 'timer', timer: 'hold' },
  'timer keepalive': { type: 'timer', timer: 'keepalive' },
  tcpConnected: { type: 'tcpConnected' },
  tcpFailed: { type: 'tcpFailed', reason: 'reset' },
  'OPEN': msg(PEER_OPEN),
  'UPDATE': msg({ type: 'update', withdrawn: [], attributes: {}, nlri: [] }),
  'NOTIFICATION': msg({ type: 'notification', code: 6, subcode: 3, data: new Uint8Array(0) }),
  'KEEPALIVE': msg({ type: 'keepalive' }),
  'ROUTE-REFRESH': msg({ type: 'routeRefresh', afi: 1, subtype: 0, safi: 1 }),
  'ROUTE-REFRESH BoRR': msg({ type: 'routeRefresh', afi: 1, subtype: 1, safi: 1 }),
  'ROUTE-REFRESH subtype 7': msg({ type: 'routeRefresh', afi: 1, subtype: 7, safi: 1 }),
  'ROUTE-REFRESH IPv4 multicast': msg({ type: 'routeRefresh', afi: 1, subtype: 0, safi: 2 }),
  'UPDATE treated as withdraw': msg({
    type: 'update',
    withdrawn: [],
    attributes: {},
    nlri: [],
    errors: [{ attribute: 1, action: 'treat-as-withdraw', reason: 'ORIGIN: undefined value 3 (RFC 7606 §7.1)' }],
  }),
  decodeError: { type: 'decodeError', notification: notification(3, 1) },
  adoptConnection: { type: 'adoptConnection' },
};

/** Compact, exact description of actions. */
function describe_(actions: readonly FsmAction[]): string[] {
  const out: string[] = [];
  const stops = actions.filter((a) => a.type === 'stopTimer').length;
  let stopAllShown = false;
  for (const a of actions) {
    switch (a.type) {
      case 'send':
        out.push(a.message.type === 'notification' ? `send NOTIFICATION ${a.message.code}/${a.message.subcode}` : `send ${a.message.type}`);
        break;
      case 'startTimer':
        out.push(`start ${a.timer} ${a.delayMs}`);
        break;
      case 'stopTimer':
        if (stops === 4) {
          if (!stopAllShown) out.push('stop all timers');
          stopAllShown = true;
        } else out.push(`stop ${a.timer}`);
        break;
      case 'routeRefresh':
        out.push(`routeRefresh IPv${a.family}`);
        break;
      case 'routeRefreshIgnored':
        out.push(`routeRefreshIgnored: ${a.reason}`);
        break;
      case 'updateErrors':
        out.push(`updateErrors: ${a.update.errors?.map((e) => e.action).join(', ')}`);
        break;
      default:
        out.push(a.type);
    }
  }
  return out;
}

function run(s: FsmState, ...names: string[]): FsmState {
  for (const n of names) s = step(s, EVENTS[n] as FsmEvent).state;
  return s;
}

const idle = initialState(CONFIG);
const STATES: Record<string, FsmState> = {
  Idle: idle,
  'Idle (waiting to retry)': run(idle, 'start', 'tcpConnected', 'OPEN', 'KEEPALIVE', 'tcpFailed'),
  Connect: run(idle, 'start'),
  Active: run(idle, 'start', 'tcpFailed'),
  OpenSent: run(idle, 'start', 'tcpConnected'),
  OpenConfirm: run(idle, 'start', 'tcpConnected', 'OPEN'),
  Established: run(idle, 'start', 'tcpConnected', 'OPEN', 'KEEPALIVE'),
};

const ERR = (sub: number, idleHoldMs = 5000, down = false): string[] => [
  `send NOTIFICATION 5/${sub}`,
  'disconnect',
  'stop all timers',
  ...(down ? ['down'] : []),
  `start idleHold ${idleHoldMs}`,
];
const IGNORED: [string, string[]] = ['', []];
const OPEN_SENT: string[] = ['stop connectRetry', 'stop idleHold', 'send open', 'start hold 240000'];
const ADOPT: string[] = ['stop all timers', 'start hold 240000'];

/** state -> event -> [next state ('' = unchanged), actions]. */
const TABLE: Record<string, Record<string, [string, string[]]>> = {
  Idle: {
    start: ['Connect', ['connect', 'start connectRetry 5000']],
    stop: ['Idle', ['disconnect', 'stop all timers']],
    'timer connectRetry': IGNORED,
    'timer idleHold': IGNORED,
    'timer hold': IGNORED,
    'timer keepalive': IGNORED,
    tcpConnected: ['', ['disconnect']],
    tcpFailed: IGNORED,
    OPEN: IGNORED,
    UPDATE: IGNORED,
    NOTIFICATION: IGNORED,
    KEEPALIVE: IGNORED,
    'ROUTE-REFRESH': IGNORED,
    'ROUTE-REFRESH BoRR': IGNORED,
    'ROUTE-REFRESH subtype 7': IGNORED,
    'ROUTE-REFRESH IPv4 multicast': IGNORED,
    'UPDATE treated as withdraw': IGNORED,
    decodeError: IGNORED,
    adoptConnection: IGNORED,
  },
  'Idle (waiting to retry)': {
    start: IGNORED,
    stop: ['Idle', ['disconnect', 'stop all timers']],
    'timer connectRetry': IGNORED,
    'timer idleHold': ['Connect', ['connect', 'start connectRetry 10000']],
    'timer hold': IGNORED,
    'timer keepalive': IGNORED,
    tcpConnected: ['OpenSent', OPEN_SENT],
    tcpFailed: IGNORED,
    OPEN: IGNORED,
    UPDATE: IGNORED,
    NOTIFICATION: IGNORED,
    KEEPALIVE: IGNORED,
    'ROUTE-REFRESH': IGNORED,
    'ROUTE-REFRESH BoRR': IGNORED,
    'ROUTE-REFRESH subtype 7': IGNORED,
    'ROUTE-REFRESH IPv4 multicast': IGNORED,
    'UPDATE treated as withdraw': IGNORED,
    decodeError: IGNORED,
    adoptConnection: ['OpenSent', ADOPT],
  },
  Connect: {
    start: IGNORED,
    stop: ['Idle', ['disconnect', 'stop all timers']],
    'timer connectRetry': ['Connect', ['disconnect', 'connect', 'start connectRetry 10000']],
    'timer idleHold': IGNORED,
    'timer hold': IGNORED,
    'timer keepalive': IGNORED,
    tcpConnected: ['OpenSent', OPEN_SENT],
    tcpFailed: ['Active', ['disconnect', 'start connectRetry 5000']],
    OPEN: IGNORED,
    UPDATE: IGNORED,
    NOTIFICATION: IGNORED,
    KEEPALIVE: IGNORED,
    'ROUTE-REFRESH': IGNORED,
    'ROUTE-REFRESH BoRR': IGNORED,
    'ROUTE-REFRESH subtype 7': IGNORED,
    'ROUTE-REFRESH IPv4 multicast': IGNORED,
    'UPDATE treated as withdraw': IGNORED,
    decodeError: IGNORED,
    adoptConnection: ['OpenSent', ADOPT],
  },
  Active: {
    start: IGNORED,
    stop: ['Idle', ['disconnect', 'stop all timers']],
    'timer connectRetry': ['Connect', ['connect', 'start connectRetry 10000']],
    'timer idleHold': IGNORED,
    'timer hold': IGNORED,
    'timer keepalive': IGNORED,
    tcpConnected: ['OpenSent', OPEN_SENT],
    tcpFailed: IGNORED,
    OPEN: IGNORED,
    UPDATE: IGNORED,
    NOTIFICATION: IGNORED,
    KEEPALIVE: IGNORED,
    'ROUTE-REFRESH': IGNORED,
    'ROUTE-REFRESH BoRR': IGNORED,
    'ROUTE-REFRESH subtype 7': IGNORED,
    'ROUTE-REFRESH IPv4 multicast': IGNORED,
    'UPDATE treated as withdraw': IGNORED,
    decodeError: IGNORED,
    adoptConnection: ['OpenSent', ADOPT],
  },
  OpenSent: {
    start: IGNORED,
    stop: ['Idle', ['send NOTIFICATION 6/2', 'disconnect', 'stop all timers']],
    'timer connectRetry': ['Idle', ERR(1)],
    'timer idleHold': ['Idle', ERR(1)],
    'timer hold': ['Idle', ['send NOTIFICATION 4/0', 'disconnect', 'stop all timers', 'start idleHold 5000']],
    'timer keepalive': ['Idle', ERR(1)],
    tcpConnected: IGNORED,
    tcpFailed: ['Active', ['disconnect', 'stop hold', 'start connectRetry 5000']],
    OPEN: ['OpenConfirm', ['send keepalive', 'start hold 30000', 'start keepalive 10000']],
    UPDATE: ['Idle', ERR(1)],
    NOTIFICATION: ['Idle', ['disconnect', 'stop all timers', 'start idleHold 5000']],
    KEEPALIVE: ['Idle', ERR(1)],
    'ROUTE-REFRESH': ['Idle', ERR(1)],
    'ROUTE-REFRESH BoRR': ['Idle', ERR(1)],
    'ROUTE-REFRESH subtype 7': ['Idle', ERR(1)],
    'ROUTE-REFRESH IPv4 multicast': ['Idle', ERR(1)],
    'UPDATE treated as withdraw': ['Idle', ERR(1)],
    decodeError: ['Idle', ['send NOTIFICATION 3/1', 'disconnect', 'stop all timers', 'start idleHold 5000']],
    adoptConnection: ['OpenSent', ADOPT],
  },
  OpenConfirm: {
    start: IGNORED,
    stop: ['Idle', ['send NOTIFICATION 6/2', 'disconnect', 'stop all timers']],
    'timer connectRetry': ['Idle', ERR(2)],
    'timer idleHold': ['Idle', ERR(2)],
    'timer hold': ['Idle', ['send NOTIFICATION 4/0', 'disconnect', 'stop all timers', 'start idleHold 5000']],
    'timer keepalive': ['', ['send keepalive', 'start keepalive 10000']],
    tcpConnected: IGNORED,
    tcpFailed: ['Idle', ['disconnect', 'stop all timers', 'start idleHold 5000']],
    OPEN: ['Idle', ERR(2)],
    UPDATE: ['Idle', ERR(2)],
    NOTIFICATION: ['Idle', ['disconnect', 'stop all timers', 'start idleHold 5000']],
    KEEPALIVE: ['Established', ['start hold 30000', 'established']],
    'ROUTE-REFRESH': ['Idle', ERR(2)],
    'ROUTE-REFRESH BoRR': ['Idle', ERR(2)],
    'ROUTE-REFRESH subtype 7': ['Idle', ERR(2)],
    'ROUTE-REFRESH IPv4 multicast': ['Idle', ERR(2)],
    'UPDATE treated as withdraw': ['Idle', ERR(2)],
    decodeError: ['Idle', ['send NOTIFICATION 3/1', 'disconnect', 'stop all timers', 'start idleHold 5000']],
    adoptConnection: ['OpenSent', ADOPT],
  },
  Established: {
    start: IGNORED,
    stop: ['Idle', ['send NOTIFICATION 6/2', 'disconnect', 'stop all timers', 'down']],
    'timer connectRetry': ['Idle', ERR(3, 5000, true)],
    'timer idleHold': ['Idle', ERR(3, 5000, true)],
    'timer hold': ['Idle', ['send NOTIFICATION 4/0', 'disconnect', 'stop all timers', 'down', 'start idleHold 5000']],
    'timer keepalive': ['', ['send keepalive', 'start keepalive 10000']],
    tcpConnected: IGNORED,
    tcpFailed: ['Idle', ['disconnect', 'stop all timers', 'down', 'start idleHold 5000']],
    OPEN: ['Idle', ERR(3, 5000, true)],
    UPDATE: ['', ['start hold 30000']],
    NOTIFICATION: ['Idle', ['disconnect', 'stop all timers', 'down', 'start idleHold 5000']],
    KEEPALIVE: ['', ['start hold 30000']],
    'ROUTE-REFRESH': ['', ['start hold 30000', 'routeRefresh IPv4']],
    // RFC 7313 §4: a BoRR or EoRR only matters to a speaker that keeps the peer's routes.
    'ROUTE-REFRESH BoRR': ['', ['start hold 30000']],
    // RFC 7313 §5: an unknown subtype is ignored, not an error.
    'ROUTE-REFRESH subtype 7': ['', ['start hold 30000', 'routeRefreshIgnored: unknown subtype 7 (RFC 7313 §5)']],
    // RFC 2918 §4: a family that was not negotiated is ignored.
    'ROUTE-REFRESH IPv4 multicast': ['', ['start hold 30000', 'routeRefreshIgnored: AFI/SAFI 1/2 was not negotiated (RFC 2918 §4)']],
    // RFC 7606: the session is kept; the errors go to the session to count and log.
    'UPDATE treated as withdraw': ['', ['start hold 30000', 'updateErrors: treat-as-withdraw']],
    decodeError: ['Idle', ['send NOTIFICATION 3/1', 'disconnect', 'stop all timers', 'down', 'start idleHold 5000']],
    adoptConnection: IGNORED,
  },
};

describe('every (state, event) pair', () => {
  for (const [stateName, row] of Object.entries(TABLE)) {
    const s = STATES[stateName] as FsmState;
    test(`the table covers every event in ${stateName}`, () => {
      expect(Object.keys(row).sort()).toEqual(Object.keys(EVENTS).sort());
    });
    for (const [eventName, [next, actions]] of Object.entries(row)) {
      test(`${stateName} + ${eventName}`, () => {
        const result = step(s, EVENTS[eventName] as FsmEvent);
        expect(result.state.state).toBe(next === '' ? s.state : next);
        expect(describe_(result.actions)).toEqual(actions);
        if (next === '' && actions.length === 0) expect(result.state).toBe(s);
      });
    }
  }

  test('the Established action carries the negotiated parameters', () => {
    const result = step(STATES.OpenConfirm as FsmState, EVENTS.KEEPALIVE as FsmEvent);
    const established = result.actions.find((a) => a.type === 'established');
    expect(established).toEqual({
      type: 'established',
      negotiated: { peerAsn: 64512, peerBgpId: '192.0.2.1', holdTimeSec: 30, keepaliveMs: 10_000, fourOctetAs: true, families: [4, 6], gracefulRestart: false },
    });
    expect(result.state.failures).toBe(0);
  });

  test('failures are remembered for the backoff and cleared by Established', () => {
    expect(STATES['Idle (waiting to retry)']?.failures).toBe(1);
    expect(STATES.Active?.failures).toBe(1);
    expect(run(STATES['Idle (waiting to retry)'] as FsmState, 'tcpConnected', 'OPEN', 'KEEPALIVE').failures).toBe(0);
  });

  test('a ROUTE-REFRESH for a family the peer did not negotiate is ignored (RFC 2918 §4)', () => {
    const ipv4Only = { ...PEER_OPEN, capabilities: [{ kind: 'multiprotocol' as const, afi: 1, safi: 1 }] };
    const s = step(step(STATES.OpenSent as FsmState, msg(ipv4Only)).state, EVENTS.KEEPALIVE as FsmEvent).state;
    expect(s.negotiated?.families).toEqual([4]);
    const result = step(s, msg({ type: 'routeRefresh', afi: 2, subtype: 0, safi: 1 }));
    expect(describe_(result.actions)).toEqual(['start hold 30000', 'routeRefreshIgnored: AFI/SAFI 2/1 was not negotiated (RFC 2918 §4)']);
  });

  test('stop after a failure cancels the retry for good', () => {
    const s = run(STATES['Idle (waiting to retry)'] as FsmState, 'stop');
    expect(s.enabled).toBe(false);
    expect(step(s, EVENTS['timer idleHold'] as FsmEvent).actions).toEqual([]);
  });
});

describe('reconnect backoff', () => {
  test('doubles from connect-retry up to 8 times it', () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => retryDelayMs(CONFIG, n))).toEqual([5000, 10000, 20000, 40000, 40000, 40000]);
  });

  test('consecutive connect failures lengthen the retry', () => {
    let s = STATES.Connect as FsmState;
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = step(s, EVENTS['timer connectRetry'] as FsmEvent);
      const t = r.actions.find((a) => a.type === 'startTimer');
      delays.push(t?.type === 'startTimer' ? t.delayMs : -1);
      s = r.state;
    }
    expect(delays).toEqual([10000, 20000, 40000, 40000, 40000]);
  });
});

describe('hold time 0', () => {
  const zero = { ...PEER_OPEN, holdTimeSec: 0 };
  test('no hold or keepalive timer in OpenConfirm or Established', () => {
    const r1 = step(STATES.OpenSent as FsmState, msg(zero));
    expect(describe_(r1.actions)).toEqual(['send keepalive', 'stop hold']);
    const r2 = step(r1.state, EVENTS.KEEPALIVE as FsmEvent);
    expect(describe_(r2.actions)).toEqual(['established']);
    expect(describe_(step(r2.state, EVENTS.UPDATE as FsmEvent).actions)).toEqual([]);
    expect(describe_(step(r2.state, EVENTS['timer keepalive'] as FsmEvent).actions)).toEqual(ERR(3, 5000, true));
  });
});

describe('OPEN negotiation', () => {
  const reject = (open: OpenMessage, config: FsmConfig = CONFIG): string => {
    const r = negotiate(config, open);
    return r.ok ? 'accepted' : `${r.notification.code}/${r.notification.subcode} ${Buffer.from(r.notification.data).toString('hex')}`.trim();
  };

  test('hold time is the smaller of the two; 1 and 2 are unacceptable', () => {
    const r = negotiate(CONFIG, { ...PEER_OPEN, holdTimeSec: 240 });
    expect(r.ok && r.negotiated.holdTimeSec).toBe(90);
    expect(r.ok && r.negotiated.keepaliveMs).toBe(30_000);
    expect(reject({ ...PEER_OPEN, holdTimeSec: 1 })).toBe('2/6');
    expect(reject({ ...PEER_OPEN, holdTimeSec: 2 })).toBe('2/6');
    const three = negotiate(CONFIG, { ...PEER_OPEN, holdTimeSec: 3 });
    expect(three.ok && three.negotiated.keepaliveMs).toBe(1000);
  });

  test('the peer ASN is checked when configured, from the 4-octet capability when present', () => {
    expect(reject({ ...PEER_OPEN, capabilities: [{ kind: 'fourOctetAs', asn: 64513 }] })).toBe('2/2');
    expect(reject({ ...PEER_OPEN, myAs: 64513, capabilities: [] })).toBe('2/2');
    expect(reject({ ...PEER_OPEN, myAs: 23456, capabilities: [{ kind: 'fourOctetAs', asn: 64512 }] })).toBe('accepted');
    expect(reject({ ...PEER_OPEN, myAs: 64999, capabilities: [] }, { ...CONFIG, peerAsn: undefined })).toBe('accepted');
    expect(reject({ ...PEER_OPEN, myAs: 0, capabilities: [] }, { ...CONFIG, peerAsn: undefined })).toBe('2/2');
  });

  test('BGP identifier 0 is refused, and our own from our own AS', () => {
    expect(reject({ ...PEER_OPEN, bgpId: '0.0.0.0' })).toBe('2/3 00000000');
    const ibgp = { ...CONFIG, peerAsn: 64600 };
    expect(reject({ ...PEER_OPEN, myAs: 64600, bgpId: '192.0.2.11', capabilities: [] }, ibgp)).toBe('2/3 c000020b');
    expect(reject({ ...PEER_OPEN, bgpId: '192.0.2.11' })).toBe('accepted');
  });

  test('families: a peer without multiprotocol speaks IPv4 only; 4-octet AS needs both sides', () => {
    const r = negotiate(CONFIG, { ...PEER_OPEN, capabilities: [] });
    expect(r.ok && r.negotiated.families).toEqual([4]);
    expect(r.ok && r.negotiated.fourOctetAs).toBe(false);
    const v6only = negotiate(CONFIG, { ...PEER_OPEN, capabilities: [{ kind: 'multiprotocol', afi: 2, safi: 1 }] });
    expect(v6only.ok && v6only.negotiated.families).toEqual([6]);
  });

  test('our OPEN: AS_TRANS when the local ASN needs 4 octets', () => {
    expect(localOpen({ ...CONFIG, localAsn: 4200000000 })).toMatchObject({ myAs: 23456, capabilities: expect.arrayContaining([{ kind: 'fourOctetAs', asn: 4200000000 }]) });
    expect(localOpen(CONFIG)).toMatchObject({ myAs: 64600, holdTimeSec: 90, bgpId: '192.0.2.11' });
  });
});
