/**
 * The BGP finite state machine of RFC 4271 §8 as a pure step function, in the
 * shape of OpenBGPD's bgp_fsm(): one switch on state and event, and anything
 * unexpected sends a Finite State Machine Error NOTIFICATION (RFC 6608) and
 * goes Idle. Timers are named deadlines: the step asks for them as actions
 * and the session feeds their expiry back as events.
 *
 * One FsmState describes one peer's current connection. Connection
 * collisions (a second TCP connection from the same peer) are resolved by the
 * session before events reach this function.
 */
import type { AddressFamily } from '../config/types.js';
import { parseIpv4 } from './address.js';
import { notificationMessage, type BgpMessage, type Capability, type OpenMessage, type RouteRefreshMessage, type UpdateMessage } from './codec.js';
import { afiFamily, familyAfi } from './codec-update.js';
import {
  AS_TRANS,
  BGP_VERSION,
  ErrorCode,
  FsmSubcode,
  LARGE_HOLD_TIME_SEC,
  OpenSubcode,
  RouteRefreshSubtype,
  Safi,
} from './constants.js';
import { describeNotification, notification, type Notification } from './notification.js';

export const SessionState = {
  Idle: 'Idle',
  Connect: 'Connect',
  Active: 'Active',
  OpenSent: 'OpenSent',
  OpenConfirm: 'OpenConfirm',
  Established: 'Established',
} as const;
export type SessionState = (typeof SessionState)[keyof typeof SessionState];

export type TimerName = 'connectRetry' | 'idleHold' | 'hold' | 'keepalive';
export const TIMER_NAMES: readonly TimerName[] = ['connectRetry', 'idleHold', 'hold', 'keepalive'];

export interface FsmConfig {
  readonly localAsn: number;
  readonly routerId: string;
  /** Proposed hold time: 0, or 3 and more. */
  readonly holdTimeSec: number;
  /** The peer's expected ASN, checked against its OPEN when given. */
  readonly peerAsn: number | undefined;
  /** Families we announce: one multiprotocol capability each. */
  readonly families: readonly AddressFamily[];
  /** First reconnect delay; doubles after each consecutive failure up to 8 times it. */
  readonly connectRetryMs: number;
  /**
   * RFC 4724: offer graceful restart, the peer to keep our routes this long
   * while we restart. `forwarding` says, as each OPEN is sent, for which
   * families the kernel forwards already (IPVS has our services): only for
   * those may the peer keep our old routes until our End-of-RIB; a director
   * that starts with an empty table must not attract traffic it drops.
   */
  readonly gracefulRestart?:
    | {
        readonly restartTimeSec: number;
        readonly forwarding: () => readonly AddressFamily[];
        /**
         * This process took over from one that ran before (it found its
         * services in the kernel) and has not yet said End-of-RIB: the OPEN
         * sets Restart State (R). Absent: never set.
         */
        readonly restarting?: () => boolean;
      }
    | undefined;
}

/** What both OPENs agreed on. */
export interface Negotiated {
  readonly peerAsn: number;
  readonly peerBgpId: string;
  readonly holdTimeSec: number;
  /** 0 when the hold time is 0 (no keepalives at all). */
  readonly keepaliveMs: number;
  readonly fourOctetAs: boolean;
  /** Families both sides support and we announce. */
  readonly families: readonly AddressFamily[];
  /** Both sides offered graceful restart (RFC 4724): the peer keeps our routes across our restarts. */
  readonly gracefulRestart: boolean;
}

export interface FsmState {
  readonly config: FsmConfig;
  readonly state: SessionState;
  /** Started and not stopped: the session restarts itself after errors. */
  readonly enabled: boolean;
  /** Consecutive failures, for the reconnect backoff; reset when Established. */
  readonly failures: number;
  readonly negotiated: Negotiated | undefined;
  readonly lastError: string | undefined;
}

export type FsmEvent =
  /** ManualStart / AutomaticStart (events 1, 3). */
  | { readonly type: 'start' }
  /**
   * ManualStop (event 2): the NOTIFICATION to send when connected; none for
   * a graceful restart (RFC 4724), where a NOTIFICATION would make the peer
   * drop our routes.
   */
  | { readonly type: 'stop'; readonly notification: Notification | undefined }
  | { readonly type: 'timer'; readonly timer: TimerName }
  /** An outgoing connection succeeded or an incoming one was accepted (events 16, 17). */
  | { readonly type: 'tcpConnected' }
  /** The connection failed or closed (event 18). */
  | { readonly type: 'tcpFailed'; readonly reason: string }
  | { readonly type: 'message'; readonly message: BgpMessage }
  /** A received message was malformed (events 21, 22, 28). */
  | { readonly type: 'decodeError'; readonly notification: Notification }
  /**
   * Collision resolution (RFC 4271 §6.8) kept the peer's connection, on which
   * our OPEN is already sent: continue on it in OpenSent. Its OPEN follows.
   */
  | { readonly type: 'adoptConnection' };

export type FsmAction =
  | { readonly type: 'connect' }
  | { readonly type: 'disconnect' }
  | { readonly type: 'send'; readonly message: BgpMessage }
  | { readonly type: 'startTimer'; readonly timer: TimerName; readonly delayMs: number }
  | { readonly type: 'stopTimer'; readonly timer: TimerName }
  | { readonly type: 'established'; readonly negotiated: Negotiated }
  /** Left Established: what the peer was told is gone with the session. */
  | { readonly type: 'down'; readonly reason: string }
  /** The peer asked for a family's routes again (RFC 2918). */
  | { readonly type: 'routeRefresh'; readonly family: AddressFamily }
  /** A ROUTE-REFRESH that asks for nothing we can give: counted and logged. */
  | { readonly type: 'routeRefreshIgnored'; readonly reason: string }
  /** An UPDATE with errors the session survives (RFC 7606): counted and logged. */
  | { readonly type: 'updateErrors'; readonly update: UpdateMessage };

export interface StepResult {
  readonly state: FsmState;
  readonly actions: readonly FsmAction[];
}

export function initialState(config: FsmConfig): FsmState {
  return { config, state: SessionState.Idle, enabled: false, failures: 0, negotiated: undefined, lastError: undefined };
}

/** The reconnect delay after `failures` consecutive failures. */
export function retryDelayMs(config: FsmConfig, failures: number): number {
  return config.connectRetryMs * 2 ** Math.min(Math.max(failures, 0), 3);
}

export function localOpen(config: FsmConfig): OpenMessage {
  const capabilities: Capability[] = [
    ...config.families.map((f): Capability => ({ kind: 'multiprotocol', afi: familyAfi(f), safi: Safi.Unicast })),
    { kind: 'routeRefresh' },
    { kind: 'fourOctetAs', asn: config.localAsn },
  ];
  if (config.gracefulRestart !== undefined) {
    const forwarding = config.gracefulRestart.forwarding();
    capabilities.push({
      kind: 'gracefulRestart',
      // RFC 4724 §4.1: a restarting speaker sets R in the OPENs it sends
      // after its restart (the peer then need not wait for our End-of-RIB
      // before sending its routes); a fresh start, or a session that comes
      // back later in the same process, leaves it clear.
      restartState: config.gracefulRestart.restarting?.() ?? false,
      notification: false,
      restartTimeSec: config.gracefulRestart.restartTimeSec,
      families: config.families.map((f) => ({ afi: familyAfi(f), safi: Safi.Unicast, forwarding: forwarding.includes(f) })),
    });
  }
  return {
    type: 'open',
    version: BGP_VERSION,
    myAs: config.localAsn > 0xffff ? AS_TRANS : config.localAsn,
    holdTimeSec: config.holdTimeSec,
    bgpId: config.routerId,
    capabilities,
  };
}

/** Checks the peer's OPEN against ours (RFC 4271 §6.2, RFC 6793, RFC 4760). */
export function negotiate(config: FsmConfig, open: OpenMessage): { ok: true; negotiated: Negotiated } | { ok: false; notification: Notification } {
  const openError = (subcode: number, data?: Uint8Array) => ({ ok: false as const, notification: notification(ErrorCode.OpenMessage, subcode, data) });
  const four = open.capabilities.find((c) => c.kind === 'fourOctetAs');
  const peerAsn = four ? four.asn : open.myAs;
  if (peerAsn === 0 || (config.peerAsn !== undefined && peerAsn !== config.peerAsn)) {
    return openError(OpenSubcode.BadPeerAs);
  }
  if (open.holdTimeSec === 1 || open.holdTimeSec === 2) return openError(OpenSubcode.UnacceptableHoldTime);
  const id = parseIpv4(open.bgpId);
  // RFC 6286: the identifier is any non-zero value, distinct from ours within one AS.
  if (!id || id.every((b) => b === 0) || (peerAsn === config.localAsn && open.bgpId === config.routerId)) {
    return openError(OpenSubcode.BadBgpIdentifier, id ? Uint8Array.from(id) : undefined);
  }
  const mp = open.capabilities.filter((c) => c.kind === 'multiprotocol');
  // RFC 4760 §8: a peer without the capability speaks IPv4 unicast only.
  const peerFamilies = mp.length === 0 ? [4] : mp.filter((c) => c.safi === Safi.Unicast).map((c) => (c.afi === 1 ? 4 : c.afi === 2 ? 6 : 0));
  const holdTimeSec = Math.min(config.holdTimeSec, open.holdTimeSec);
  return {
    ok: true,
    negotiated: {
      peerAsn,
      peerBgpId: open.bgpId,
      holdTimeSec,
      keepaliveMs: Math.floor(holdTimeSec / 3) * 1000,
      fourOctetAs: four !== undefined,
      families: config.families.filter((f) => peerFamilies.includes(f)),
      gracefulRestart: config.gracefulRestart !== undefined && open.capabilities.some((c) => c.kind === 'gracefulRestart'),
    },
  };
}

const send = (message: BgpMessage): FsmAction => ({ type: 'send', message });
const startTimer = (timer: TimerName, delayMs: number): FsmAction => ({ type: 'startTimer', timer, delayMs });
const stopTimer = (timer: TimerName): FsmAction => ({ type: 'stopTimer', timer });
const stopAllTimers = (): FsmAction[] => TIMER_NAMES.map(stopTimer);

function describeEvent(event: FsmEvent): string {
  switch (event.type) {
    case 'message':
      return `${event.message.type} message`;
    case 'timer':
      return `${event.timer} timer`;
    default:
      return event.type;
  }
}

/**
 * Ends the connection after an error and schedules the restart (IdleHold
 * with backoff). `notify` is sent first when given.
 */
function fail(s: FsmState, reason: string, notify?: Notification): StepResult {
  const actions: FsmAction[] = [];
  if (notify) actions.push(send(notificationMessage(notify)));
  actions.push({ type: 'disconnect' }, ...stopAllTimers());
  if (s.state === SessionState.Established) actions.push({ type: 'down', reason });
  const failures = s.failures + 1;
  if (s.enabled) actions.push(startTimer('idleHold', retryDelayMs(s.config, s.failures)));
  return { state: { ...s, state: SessionState.Idle, failures, negotiated: undefined, lastError: reason }, actions };
}

function fsmError(s: FsmState, event: FsmEvent): StepResult {
  const subcode =
    s.state === SessionState.OpenSent
      ? FsmSubcode.UnexpectedInOpenSent
      : s.state === SessionState.OpenConfirm
        ? FsmSubcode.UnexpectedInOpenConfirm
        : FsmSubcode.UnexpectedInEstablished;
  const n = notification(ErrorCode.FsmError, subcode);
  return fail(s, `unexpected ${describeEvent(event)} in ${s.state}: sent ${describeNotification(n)}`, n);
}

function stopped(s: FsmState, notify: Notification | undefined): StepResult {
  const actions: FsmAction[] = [];
  if (notify) actions.push(send(notificationMessage(notify)));
  actions.push({ type: 'disconnect' }, ...stopAllTimers());
  if (s.state === SessionState.Established) actions.push({ type: 'down', reason: 'stopped' });
  return { state: { ...s, state: SessionState.Idle, enabled: false, negotiated: undefined }, actions };
}

/** Connection up: send OPEN and wait for the peer's with the large hold time. */
function connected(s: FsmState): StepResult {
  return {
    state: { ...s, state: SessionState.OpenSent },
    actions: [stopTimer('connectRetry'), stopTimer('idleHold'), send(localOpen(s.config)), startTimer('hold', LARGE_HOLD_TIME_SEC * 1000)],
  };
}

function dial(s: FsmState): StepResult {
  return {
    state: { ...s, state: SessionState.Connect },
    actions: [{ type: 'connect' }, startTimer('connectRetry', retryDelayMs(s.config, s.failures))],
  };
}

/** Restarts the hold timer after a message, when the hold time is not 0. */
function holdRestart(s: FsmState): FsmAction[] {
  const hold = s.negotiated?.holdTimeSec ?? 0;
  return hold > 0 ? [startTimer('hold', hold * 1000)] : [];
}

/**
 * What an Established session does with a ROUTE-REFRESH: a request for a
 * negotiated family sends that family again; a BoRR or EoRR (RFC 7313 §4)
 * concerns routes we never keep; anything else is ignored.
 */
function routeRefreshAction(s: FsmState, m: RouteRefreshMessage): FsmAction[] {
  const ignored = (reason: string): FsmAction[] => [{ type: 'routeRefreshIgnored', reason }];
  switch (m.subtype) {
    case RouteRefreshSubtype.Normal: {
      const family = m.safi === Safi.Unicast ? afiFamily(m.afi) : undefined;
      if (family !== undefined && s.negotiated?.families.includes(family)) return [{ type: 'routeRefresh', family }];
      return ignored(`AFI/SAFI ${m.afi}/${m.safi} was not negotiated (RFC 2918 §4)`);
    }
    case RouteRefreshSubtype.BeginningOfRouteRefresh:
    case RouteRefreshSubtype.EndOfRouteRefresh:
      return [];
    default:
      return ignored(`unknown subtype ${m.subtype} (RFC 7313 §5)`);
  }
}

function unchanged(s: FsmState): StepResult {
  return { state: s, actions: [] };
}

export function step(s: FsmState, event: FsmEvent): StepResult {
  if (event.type === 'adoptConnection') {
    if (s.state === SessionState.Established || !s.enabled) return unchanged(s);
    return {
      state: { ...s, state: SessionState.OpenSent, negotiated: undefined },
      actions: [...stopAllTimers(), startTimer('hold', LARGE_HOLD_TIME_SEC * 1000)],
    };
  }
  if (event.type === 'stop') {
    const connectedStates: SessionState[] = [SessionState.OpenSent, SessionState.OpenConfirm, SessionState.Established];
    return stopped(s, connectedStates.includes(s.state) ? event.notification : undefined);
  }
  switch (s.state) {
    case SessionState.Idle:
      switch (event.type) {
        case 'start':
          return s.enabled ? unchanged(s) : dial({ ...s, enabled: true, failures: 0 });
        case 'timer':
          return event.timer === 'idleHold' && s.enabled ? dial(s) : unchanged(s);
        case 'tcpConnected':
          // The peer dialled us while we wait to retry: take it. When stopped, refuse it.
          return s.enabled ? connected(s) : { state: s, actions: [{ type: 'disconnect' }] };
        default:
          return unchanged(s);
      }

    case SessionState.Connect:
    case SessionState.Active:
      switch (event.type) {
        case 'timer': {
          if (event.timer !== 'connectRetry') return unchanged(s);
          // Connect: the attempt took too long, abandon it and count a failure. Active: dial again.
          const abandon = s.state === SessionState.Connect;
          const failures = abandon ? s.failures + 1 : s.failures;
          return {
            state: { ...s, state: SessionState.Connect, failures },
            actions: [
              ...(abandon ? [{ type: 'disconnect' } as const] : []),
              { type: 'connect' },
              startTimer('connectRetry', retryDelayMs(s.config, failures)),
            ],
          };
        }
        case 'tcpConnected':
          return connected(s);
        case 'tcpFailed':
          if (s.state === SessionState.Active) return unchanged(s);
          return {
            state: { ...s, state: SessionState.Active, failures: s.failures + 1, lastError: event.reason },
            actions: [{ type: 'disconnect' }, startTimer('connectRetry', retryDelayMs(s.config, s.failures))],
          };
        default:
          return unchanged(s);
      }

    case SessionState.OpenSent:
      switch (event.type) {
        case 'message': {
          const m = event.message;
          if (m.type === 'notification') return fail(s, `peer sent NOTIFICATION ${describeNotification(m)}`);
          if (m.type !== 'open') return fsmError(s, event);
          const result = negotiate(s.config, m);
          if (!result.ok) return fail(s, `rejected the peer's OPEN: sent ${describeNotification(result.notification)}`, result.notification);
          const n = result.negotiated;
          const actions: FsmAction[] = [send({ type: 'keepalive' })];
          if (n.holdTimeSec > 0) actions.push(startTimer('hold', n.holdTimeSec * 1000), startTimer('keepalive', n.keepaliveMs));
          else actions.push(stopTimer('hold'));
          return { state: { ...s, state: SessionState.OpenConfirm, negotiated: n }, actions };
        }
        case 'tcpFailed':
          return {
            state: { ...s, state: SessionState.Active, failures: s.failures + 1, lastError: event.reason },
            actions: [{ type: 'disconnect' }, stopTimer('hold'), startTimer('connectRetry', retryDelayMs(s.config, s.failures))],
          };
        case 'timer':
          if (event.timer === 'hold') return fail(s, 'hold timer expired', notification(ErrorCode.HoldTimerExpired, 0));
          return fsmError(s, event);
        case 'decodeError':
          return fail(s, `malformed message: sent ${describeNotification(event.notification)}`, event.notification);
        default:
          return unchanged(s);
      }

    case SessionState.OpenConfirm:
    case SessionState.Established: {
      const established = s.state === SessionState.Established;
      switch (event.type) {
        case 'message': {
          const m = event.message;
          if (m.type === 'notification') return fail(s, `peer sent NOTIFICATION ${describeNotification(m)}`);
          if (m.type === 'keepalive') {
            if (established) return { state: s, actions: holdRestart(s) };
            const negotiated = s.negotiated as Negotiated;
            return {
              state: { ...s, state: SessionState.Established, failures: 0, lastError: undefined },
              actions: [...holdRestart(s), { type: 'established', negotiated }],
            };
          }
          if (established && m.type === 'update') {
            const errors: FsmAction[] = m.errors && m.errors.length > 0 ? [{ type: 'updateErrors', update: m }] : [];
            return { state: s, actions: [...holdRestart(s), ...errors] };
          }
          if (established && m.type === 'routeRefresh') return { state: s, actions: [...holdRestart(s), ...routeRefreshAction(s, m)] };
          return fsmError(s, event);
        }
        case 'timer':
          if (event.timer === 'hold') return fail(s, 'hold timer expired', notification(ErrorCode.HoldTimerExpired, 0));
          if (event.timer === 'keepalive' && s.negotiated && s.negotiated.keepaliveMs > 0) {
            return { state: s, actions: [send({ type: 'keepalive' }), startTimer('keepalive', s.negotiated.keepaliveMs)] };
          }
          return fsmError(s, event);
        case 'tcpFailed':
          return fail(s, `connection lost: ${event.reason}`);
        case 'decodeError':
          return fail(s, `malformed message: sent ${describeNotification(event.notification)}`, event.notification);
        default:
          return unchanged(s);
      }
    }
  }
}
