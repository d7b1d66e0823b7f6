/**
 * What the UPDATE decoder reports instead of throwing (RFC 7606 §2): an
 * error in a received UPDATE that the session survives. Errors that still
 * reset the session are BgpDecodeErrors carrying their NOTIFICATION.
 *
 * pybal uses none of the routes it receives, so both actions come to the same
 * thing for it: count, log, keep the session and keep announcing. They are
 * kept apart because they mean different things to a speaker that does use
 * them, and because RFC 7606 §5.2 turns treat-as-withdraw into a session
 * reset where attribute-discard stays harmless.
 */
import { AttrType } from './constants.js';
import type { Notification } from './notification.js';

export type UpdateErrorAction = 'treat-as-withdraw' | 'attribute-discard';

export interface UpdateError {
  /** The attribute type code it is about; 0 when not even that could be read. */
  readonly attribute: number;
  /**
   * treat-as-withdraw: every route the UPDATE announces is to be taken as
   * withdrawn. attribute-discard: the attribute is dropped and the UPDATE
   * stands.
   */
  readonly action: UpdateErrorAction;
  /** What was wrong, with the section that says what to do about it. */
  readonly reason: string;
  /**
   * The NOTIFICATION RFC 4271 would have sent: sent after all when RFC 7606
   * §5.2 turns a treat-as-withdraw into a session reset. Absent where RFC 4271
   * saw no error (an attribute discarded for coming from an external peer).
   */
  readonly notification?: Notification;
}

const NAMES: Readonly<Record<number, string>> = {
  [AttrType.Origin]: 'ORIGIN',
  [AttrType.AsPath]: 'AS_PATH',
  [AttrType.NextHop]: 'NEXT_HOP',
  [AttrType.MultiExitDisc]: 'MULTI_EXIT_DISC',
  [AttrType.LocalPref]: 'LOCAL_PREF',
  [AttrType.AtomicAggregate]: 'ATOMIC_AGGREGATE',
  [AttrType.Aggregator]: 'AGGREGATOR',
  [AttrType.Communities]: 'COMMUNITIES',
  [AttrType.OriginatorId]: 'ORIGINATOR_ID',
  [AttrType.ClusterList]: 'CLUSTER_LIST',
  [AttrType.MpReachNlri]: 'MP_REACH_NLRI',
  [AttrType.MpUnreachNlri]: 'MP_UNREACH_NLRI',
  [AttrType.ExtendedCommunities]: 'EXTENDED_COMMUNITIES',
  [AttrType.As4Path]: 'AS4_PATH',
  [AttrType.As4Aggregator]: 'AS4_AGGREGATOR',
  [AttrType.Ipv6ExtendedCommunities]: 'IPV6_EXTENDED_COMMUNITIES',
  [AttrType.LargeCommunities]: 'LARGE_COMMUNITY',
};

/** `ORIGIN`, or `attribute 99` for a type we do not know. */
export function attributeName(type: number): string {
  return NAMES[type] ?? `attribute ${type}`;
}

/**
 * RFC 7606 §3.h: of several errors in one UPDATE, the strongest approach
 * applies. undefined when there is none.
 */
export function strongestAction(errors: readonly UpdateError[] | undefined): UpdateErrorAction | undefined {
  if (!errors || errors.length === 0) return undefined;
  return errors.some((e) => e.action === 'treat-as-withdraw') ? 'treat-as-withdraw' : 'attribute-discard';
}
