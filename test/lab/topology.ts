// Lab topology: a description (how many directors and real servers, NAT or
// DR, which address families) becomes addresses and the `ip`/`sysctl`
// commands that build it. Pure: nothing here touches the system, so the plan
// is unit-tested on the host and executed in the guest by lab.ts.
//
//                     client ns                                    rs1 ns ... rsN ns
//   192.0.2.10 / 2001:db8:2::10                      198.51.100.11+ / 2001:db8:1::11+
//                         │ eth0                                       │ eth0
//                         │                                            │
//                 eth1 ┌──┴─────┐ eth0        ┌──────────┐             │
//   192.0.2.1 ────────►│ router │────────────►│ switch   │◄────────────┘
//   2001:db8:2::1      └────────┘  .1 / ::1   │ ns: br0  │◄──── director1..M ns (.2+, ::2+)
//                                             └──────────┘      VIPs on lo
//                            LAN 198.51.100.0/24, 2001:db8:1::/64
//
// VIPs: 203.0.113.1.. and 2001:db8:3::1.. The router sends VIP traffic to
// director1 (a static route) unless vipRoute is 'bgp', where BIRD installs
// whatever the directors announce (GoBGP: the lab's kernel mirror does). NAT: real servers route back through
// director1, with ICMP redirects off (sent by directors, taken by real
// servers) as one-arm LVS-NAT needs. DR: real servers hold the VIPs on lo with arp_ignore=1 and
// arp_announce=2 and answer the client directly through the router.

export const FAMILIES = [4, 6] as const;
export type Family = (typeof FAMILIES)[number];

export const FORWARDING = ['nat', 'dr'] as const;
export type Forwarding = (typeof FORWARDING)[number];

export const VIP_ROUTES = ['static', 'bgp', 'bgp-ecmp'] as const;
export type VipRoute = (typeof VIP_ROUTES)[number];

export const ROUTER_KINDS = ['bird', 'gobgp', 'none'] as const;
export type RouterKind = (typeof ROUTER_KINDS)[number];

export type TopologyOptions = {
  /** Number of real servers, named rs1..rsN. Default 2. */
  realServers?: number;
  /** Number of directors, each its own namespace and IPVS table. Default 1. */
  directors?: number;
  /** How real servers are set up to be reached. Default 'dr'. */
  forwarding?: Forwarding;
  /** Default [4, 6]. */
  families?: readonly Family[];
  /** Number of VIPs (each in every family). Default 1. */
  vips?: number;
  /**
   * How the router reaches the VIPs: a static route to director1, or BGP
   * (BIRD's kernel protocol, or with GoBGP the lab's kernel mirror of its
   * best paths, routers/gobgp-fib.ts). 'bgp-ecmp' is 'bgp' with the router's kernel hashing flows
   * over a multipath route on their ports too (fib_multipath_hash_policy = 1),
   * so that one client's connections spread over directors announcing a VIP
   * with equal attributes (BIRD merges them: `merge paths`). Default 'static'.
   */
  vipRoute?: VipRoute;
};

/** An address in each configured family (absent for a family not configured). */
export type DualAddress = { v4?: string; v6?: string };
export type NamedAddress = DualAddress & { name: string };

export type LabAddresses = {
  /** LAN prefixes shared by router, directors and real servers. */
  lan: { v4: string; v6: string };
  /** Link between client and router. */
  clientNet: { v4: string; v6: string };
  /** The router's LAN address (the directors' BGP peer and default gateway). */
  router: DualAddress;
  /** The router's address on the client link. */
  routerClientSide: DualAddress;
  client: DualAddress;
  directors: NamedAddress[];
  realServers: NamedAddress[];
  vips: DualAddress[];
  /** Shorthands: the first director and the first VIP. */
  director: NamedAddress;
  vip: DualAddress;
};

export type Topology = {
  id: string;
  forwarding: Forwarding;
  families: readonly Family[];
  vipRoute: VipRoute;
  addr: LabAddresses;
  /** Logical node name (router, client, switch, director1.., rs1..) -> network namespace. */
  namespaces: Record<string, string>;
  /** Commands that build it, in order. */
  up: PlanStep[];
  /** Commands that tear it down (namespace deletion removes veths with them). */
  down: PlanStep[];
};

/** One command of a plan, with what it reads on stdin (`ip -batch -`). */
export type PlanStep = { argv: string[]; input?: string };

const LAN4 = '198.51.100';
const LAN6 = '2001:db8:1::';
const CLIENT4 = '192.0.2';
const CLIENT6 = '2001:db8:2::';
const VIP4 = '203.0.113';
const VIP6 = '2001:db8:3::';

function positiveInt(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`lab topology: ${name} must be an integer from 1 to ${max}, got ${value}`);
  return value;
}

function pick(families: readonly Family[], v4: string, v6: string): DualAddress {
  return { ...(families.includes(4) ? { v4 } : {}), ...(families.includes(6) ? { v6 } : {}) };
}

export function planTopology(id: string, options: TopologyOptions = {}): Topology {
  if (!/^[a-z0-9]{1,10}$/.test(id)) throw new Error(`lab topology: id must be 1-10 lower-case letters or digits, got ${JSON.stringify(id)}`);
  const realServerCount = positiveInt('realServers', options.realServers ?? 2, 200);
  const directorCount = positiveInt('directors', options.directors ?? 1, 8);
  const vipCount = positiveInt('vips', options.vips ?? 1, 200);
  const forwarding = options.forwarding ?? 'dr';
  if (!FORWARDING.includes(forwarding)) throw new Error(`lab topology: forwarding must be one of ${FORWARDING.join(', ')}, got ${String(forwarding)}`);
  const families = [...new Set(options.families ?? FAMILIES)].sort();
  if (families.length === 0 || families.some((f) => !FAMILIES.includes(f))) throw new Error(`lab topology: families must be a non-empty subset of [4, 6]`);
  const vipRoute = options.vipRoute ?? 'static';
  if (!VIP_ROUTES.includes(vipRoute)) throw new Error(`lab topology: vipRoute must be one of ${VIP_ROUTES.join(', ')}, got ${String(vipRoute)}`);

  const directors = Array.from({ length: directorCount }, (_, i) => ({ name: `director${i + 1}`, ...pick(families, `${LAN4}.${2 + i}`, `${LAN6}${2 + i}`) }));
  const realServers = Array.from({ length: realServerCount }, (_, i) => ({ name: `rs${i + 1}`, ...pick(families, `${LAN4}.${11 + i}`, `${LAN6}${11 + i}`) }));
  const vips = Array.from({ length: vipCount }, (_, i) => pick(families, `${VIP4}.${1 + i}`, `${VIP6}${1 + i}`));
  const addr: LabAddresses = {
    lan: { v4: `${LAN4}.0/24`, v6: `${LAN6}/64` },
    clientNet: { v4: `${CLIENT4}.0/24`, v6: `${CLIENT6}/64` },
    router: pick(families, `${LAN4}.1`, `${LAN6}1`),
    routerClientSide: pick(families, `${CLIENT4}.1`, `${CLIENT6}1`),
    client: pick(families, `${CLIENT4}.10`, `${CLIENT6}10`),
    directors,
    realServers,
    vips,
    director: directors[0]!,
    vip: vips[0]!,
  };

  const nodes = ['switch', 'router', 'client', ...directors.map((d) => d.name), ...realServers.map((r) => r.name)];
  const namespaces = Object.fromEntries(nodes.map((n) => [n, `lab${id}-${n}`]));
  const ns = (node: string): string => namespaces[node]!;

  // Each `ip` or `sysctl` process costs tens of milliseconds in UML, so the
  // plan is a few batches: namespaces, sysctls per namespace, the switch,
  // then one `ip -batch` per member (router first: it creates the client link).
  const batches = new Map<string, string[]>(nodes.map((n) => [n, ['link set lo up']]));
  const batch = (node: string, line: string): void => void batches.get(node)!.push(line);
  const addAddress = (node: string, dev: string, a: DualAddress, len4: number, len6: number): void => {
    if (a.v4) batch(node, `addr add ${a.v4}/${len4} dev ${dev}`);
    if (a.v6) batch(node, `addr add ${a.v6}/${len6} dev ${dev} nodad`);
  };
  const defaultVia = (node: string, gw: DualAddress): void => {
    if (gw.v4) batch(node, `route add default via ${gw.v4}`);
    if (gw.v6) batch(node, `route add ::/0 via ${gw.v6}`);
  };

  const noDad = { 'net.ipv6.conf.all.accept_dad': '0', 'net.ipv6.conf.default.accept_dad': '0' };
  const forward = { 'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1' };
  // Set on `default` before eth0 exists, so eth0 inherits them too.
  const arp = { 'net.ipv4.conf.all.arp_ignore': '1', 'net.ipv4.conf.all.arp_announce': '2', 'net.ipv4.conf.default.arp_ignore': '1', 'net.ipv4.conf.default.arp_announce': '2' };
  // One-arm NAT: a real server's reply enters the director on eth0 and leaves
  // it on eth0 towards the router, which is on the same LAN. The kernel then
  // tells the real server (ICMP redirect) to send straight to the router, and
  // once the real server obeys, its replies skip IPVS's un-NAT and the client
  // drops them. LVS-NAT on one network needs redirects off at both ends.
  const noRedirectsSent = { 'net.ipv4.conf.all.send_redirects': '0', 'net.ipv4.conf.default.send_redirects': '0' };
  const noRedirectsTaken = {
    'net.ipv4.conf.all.accept_redirects': '0',
    'net.ipv4.conf.default.accept_redirects': '0',
    'net.ipv6.conf.all.accept_redirects': '0',
    'net.ipv6.conf.default.accept_redirects': '0',
  };
  const nat = forwarding === 'nat';
  const sysctls: Record<string, Record<string, string>> = {
    switch: { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' },
    // L4 hashing: a multipath route sends each connection (not each client) its own way.
    router: { ...noDad, ...forward, ...(vipRoute === 'bgp-ecmp' ? { 'net.ipv4.fib_multipath_hash_policy': '1', 'net.ipv6.fib_multipath_hash_policy': '1' } : {}) },
    client: noDad,
    ...Object.fromEntries(directors.map((d) => [d.name, { ...noDad, ...forward, ...(nat ? noRedirectsSent : {}) }])),
    ...Object.fromEntries(realServers.map((r) => [r.name, nat ? { ...noDad, ...noRedirectsTaken } : { ...noDad, ...arp }])),
  };

  // The LAN: one bridge in the switch namespace, one veth port per member,
  // named after the member on the switch side and eth0 inside the member.
  batch('switch', 'link add name br0 type bridge forward_delay 0');
  batch('switch', 'link set br0 up');
  const lanMembers: NamedAddress[] = [{ name: 'router', ...addr.router }, ...directors, ...realServers];
  for (const member of lanMembers) {
    const port = member.name === 'router' ? 'rtr' : member.name.replace('director', 'dir');
    batch('switch', `link add name ${port} type veth peer name eth0 netns ${ns(member.name)}`);
    batch('switch', `link set ${port} master br0 up`);
    addAddress(member.name, 'eth0', member, 24, 64);
    batch(member.name, 'link set eth0 up');
  }
  // Client link: a plain veth pair between router (eth1) and client (eth0).
  batch('router', `link add name eth1 type veth peer name eth0 netns ${ns('client')}`);
  addAddress('router', 'eth1', addr.routerClientSide, 24, 64);
  batch('router', 'link set eth1 up');
  addAddress('client', 'eth0', addr.client, 24, 64);
  batch('client', 'link set eth0 up');

  defaultVia('client', addr.routerClientSide);
  for (const d of directors) {
    defaultVia(d.name, addr.router);
    for (const vip of vips) addAddress(d.name, 'lo', vip, 32, 128);
  }
  for (const r of realServers) {
    defaultVia(r.name, forwarding === 'nat' ? addr.director : addr.router);
    if (forwarding === 'dr') for (const vip of vips) addAddress(r.name, 'lo', vip, 32, 128);
  }
  if (vipRoute === 'static') {
    for (const vip of vips) {
      if (vip.v4 && addr.director.v4) batch('router', `route add ${vip.v4}/32 via ${addr.director.v4}`);
      if (vip.v6 && addr.director.v6) batch('router', `route add ${vip.v6}/128 via ${addr.director.v6}`);
    }
  }

  const up: PlanStep[] = [
    { argv: ['ip', '-batch', '-'], input: nodes.map((n) => `netns add ${ns(n)}\n`).join('') },
    ...nodes.map((n) => ({ argv: ['ip', 'netns', 'exec', ns(n), 'sysctl', '-q', '-w', ...Object.entries(sysctls[n] ?? {}).map(([k, v]) => `${k}=${v}`)] })),
    ...nodes.map((n) => ({ argv: ['ip', '-n', ns(n), '-batch', '-'], input: batches.get(n)!.map((l) => `${l}\n`).join('') })),
  ];
  const down: PlanStep[] = [{ argv: ['ip', '-batch', '-'], input: [...nodes].reverse().map((n) => `netns delete ${ns(n)}\n`).join('') }];
  return { id, forwarding, families, vipRoute, addr, namespaces, up, down };
}

/** A plan as a shell script (for logs and for running by hand). */
export function formatPlan(steps: readonly PlanStep[]): string {
  const quote = (w: string): string => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`);
  return steps.map((s) => s.argv.map(quote).join(' ') + (s.input === undefined ? '\n' : ` <<'EOF'\n${s.input}EOF\n`)).join('');
}
