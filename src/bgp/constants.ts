/**
 * BGP-4 wire constants (RFC 4271, 4760, 6793, 2918, 7313, 1997, 4360, 4456,
 * 5701, 8092, 8203, 6608), named as the RFCs name them.
 */

export const BGP_PORT = 179;
export const BGP_VERSION = 4;
export const HEADER_LENGTH = 19;
export const MARKER_LENGTH = 16;
/** RFC 4271 §4: the largest message without RFC 8654 extended messages. */
export const MAX_MESSAGE_LENGTH = 4096;
/** RFC 6793: the 2-octet stand-in for a 4-octet ASN. */
export const AS_TRANS = 23456;
/** RFC 4271 §10: hold time proposed while waiting for the peer's OPEN. */
export const LARGE_HOLD_TIME_SEC = 240;

export const MessageType = {
  Open: 1,
  Update: 2,
  Notification: 3,
  Keepalive: 4,
  RouteRefresh: 5,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Smallest legal length of each message type, header included (RFC 4271 §4, RFC 2918). */
export const MIN_LENGTH: Record<MessageType, number> = {
  [MessageType.Open]: 29,
  [MessageType.Update]: 23,
  [MessageType.Notification]: 21,
  [MessageType.Keepalive]: 19,
  [MessageType.RouteRefresh]: 23,
};

export const ErrorCode = {
  MessageHeader: 1,
  OpenMessage: 2,
  UpdateMessage: 3,
  HoldTimerExpired: 4,
  FsmError: 5,
  Cease: 6,
  /** RFC 7313 §5. */
  RouteRefreshMessage: 7,
} as const;

export const HeaderSubcode = {
  ConnectionNotSynchronized: 1,
  BadMessageLength: 2,
  BadMessageType: 3,
} as const;

export const OpenSubcode = {
  Unspecific: 0,
  UnsupportedVersionNumber: 1,
  BadPeerAs: 2,
  BadBgpIdentifier: 3,
  UnsupportedOptionalParameter: 4,
  UnacceptableHoldTime: 6,
  UnsupportedCapability: 7,
} as const;

export const UpdateSubcode = {
  MalformedAttributeList: 1,
  UnrecognizedWellKnownAttribute: 2,
  MissingWellKnownAttribute: 3,
  AttributeFlagsError: 4,
  AttributeLengthError: 5,
  InvalidOriginAttribute: 6,
  InvalidNextHopAttribute: 8,
  OptionalAttributeError: 9,
  InvalidNetworkField: 10,
  MalformedAsPath: 11,
} as const;

/** RFC 7313 §5. */
export const RouteRefreshSubcode = {
  InvalidMessageLength: 1,
} as const;

/** RFC 7313 §3: the octet RFC 2918 reserved. */
export const RouteRefreshSubtype = {
  Normal: 0,
  /** BoRR: Beginning of Route Refresh. */
  BeginningOfRouteRefresh: 1,
  /** EoRR: End of Route Refresh. */
  EndOfRouteRefresh: 2,
} as const;

/** RFC 6608. */
export const FsmSubcode = {
  Unspecified: 0,
  UnexpectedInOpenSent: 1,
  UnexpectedInOpenConfirm: 2,
  UnexpectedInEstablished: 3,
} as const;

/** RFC 4486. */
export const CeaseSubcode = {
  AdministrativeShutdown: 2,
  PeerDeconfigured: 3,
  AdministrativeReset: 4,
  ConnectionRejected: 5,
  ConnectionCollisionResolution: 7,
} as const;

export const AttrFlag = {
  Optional: 0x80,
  Transitive: 0x40,
  Partial: 0x20,
  ExtendedLength: 0x10,
} as const;

export const AttrType = {
  Origin: 1,
  AsPath: 2,
  NextHop: 3,
  MultiExitDisc: 4,
  LocalPref: 5,
  AtomicAggregate: 6,
  Aggregator: 7,
  Communities: 8,
  /** RFC 4456. */
  OriginatorId: 9,
  /** RFC 4456. */
  ClusterList: 10,
  MpReachNlri: 14,
  MpUnreachNlri: 15,
  /** RFC 4360. */
  ExtendedCommunities: 16,
  As4Path: 17,
  As4Aggregator: 18,
  /** RFC 5701. */
  Ipv6ExtendedCommunities: 25,
  /** RFC 8092. */
  LargeCommunities: 32,
} as const;

export const Origin = { Igp: 0, Egp: 1, Incomplete: 2 } as const;

export const AsPathSegmentType = { AsSet: 1, AsSequence: 2, AsConfedSequence: 3, AsConfedSet: 4 } as const;

export const OptionalParameterType = { Capabilities: 2 } as const;

export const CapabilityCode = {
  Multiprotocol: 1,
  RouteRefresh: 2,
  GracefulRestart: 64,
  FourOctetAs: 65,
} as const;

export const Afi = { Ipv4: 1, Ipv6: 2 } as const;
export const Safi = { Unicast: 1 } as const;
