/**
 * The man pages pybal(8) and pybal.conf(5), written in roff. pybal.conf(5)
 * takes its key reference from etc/pybal.conf.example, where every key is
 * set under a comment that says what it does (a unit test keeps it so), so
 * the page and the example cannot disagree.
 */

/** Text made safe for roff: backslashes, and a dot or quote that would start a request. */
export function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .replace(/^([.'])/, '\\&$1');
}

export interface ExampleKey {
  readonly section: 'global' | 'service';
  readonly key: string;
  readonly value: string;
  readonly comment: string;
}

/** Every key of the example with the comment above it; service keys once, at their first appearance. */
export function exampleKeys(example: string): { intro: string[]; keys: ExampleKey[] } {
  const intro: string[] = [];
  const keys: ExampleKey[] = [];
  const seen = new Set<string>();
  let section: 'global' | 'service' | undefined;
  let comment: string[] = [];
  for (const line of example.split('\n')) {
    const header = /^\[([^\]]+)\]\s*$/.exec(line);
    if (header) {
      section = header[1] === 'global' ? 'global' : 'service';
      comment = [];
      continue;
    }
    const remark = /^[#;]\s?(.*)$/.exec(line);
    if (remark) {
      if (section === undefined) intro.push(remark[1]!);
      else comment.push(remark[1]!);
      continue;
    }
    const entry = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
    if (entry && section !== undefined) {
      const id = `${section} ${entry[1]}`;
      if (!seen.has(id)) {
        seen.add(id);
        keys.push({ section, key: entry[1]!, value: entry[2]!, comment: comment.join(' ') });
      }
    }
    comment = [];
  }
  return { intro, keys };
}

const header = (name: string, section: number, version: string, date: string, title: string): string[] => [
  `.TH ${name.toUpperCase()} ${section} "${date}" "pybal ${version}" "${title}"`,
];

function keyItems(keys: readonly ExampleKey[]): string[] {
  const out: string[] = [];
  for (const k of keys) {
    out.push('.TP', `.B ${roff(k.key)}`, roff(k.comment.replace(/^\(new\)\s*/, '')));
    if (k.comment.startsWith('(new)')) out.push('Not in PyBal.');
    out.push(`Example: \\fB${roff(k.key)} = ${roff(k.value)}\\fR`);
  }
  return out;
}

/** pybal.conf(5). */
export function confManPage(example: string, version: string, date: string): string {
  const { intro, keys } = exampleKeys(example);
  const globalKeys = keys.filter((k) => k.section === 'global');
  const serviceKeys = keys.filter((k) => k.section === 'service' && !k.key.includes('.'));
  const monitorKeys = keys.filter((k) => k.section === 'service' && k.key.includes('.'));
  const lines = [
    ...header('pybal.conf', 5, version, date, 'File Formats'),
    '.SH NAME',
    'pybal.conf \\- configuration of the pybal load\\-balancer control daemon',
    '.SH SYNOPSIS',
    '.B /etc/pybal/pybal.conf',
    '.SH DESCRIPTION',
    'pybal reads one',
    '.B [global]',
    'section and one section per LVS service, in the format of PyBal, the daemon it succeeds, so that an existing',
    'PyBal configuration works unchanged.',
    ...intro
      .filter((l) => l !== '' && !/^pybal\.conf: /.test(l))
      .map((l) => roff(l)),
    '.PP',
    'A key that pybal does not know is an error when it could change how traffic is forwarded, addressed, pooled or',
    'announced, and a warning otherwise. Every error names the file, the line and the key.',
    '.B pybal check\\-config',
    'checks a file without running it.',
    '.SH "GLOBAL KEYS"',
    ...keyItems(globalKeys),
    '.SH "SERVICE KEYS"',
    'Each other section is one LVS service, named freely; its name is the service\'s name in the API and the log.',
    ...keyItems(serviceKeys),
    '.SH "MONITOR OPTIONS"',
    'Options of a monitor are written',
    '.IB monitor . option',
    'in the section of a service that lists the monitor in',
    '.BR monitors .',
    ...keyItems(monitorKeys),
    '.SH "POOL FILES"',
    'The',
    '.B config',
    'key of a service names its pool: a file (file://), a web resource (http://, https://) or an etcd key (etcd://, etcd3://),',
    'read again whenever it changes. Each line of a pool file is one server as a Python dictionary, for example',
    '.PP',
    ".RS\n{ 'host': 'mw1001.example.org', 'weight': 10, 'enabled': True }\n.RE",
    '.PP',
    'or the file is one JSON array of such objects. A server with',
    ".B 'enabled': False",
    'is checked but not pooled; a server whose line is removed is forgotten.',
    '.SH FILES',
    '.TP',
    '.B /etc/pybal/pybal.conf',
    'The configuration; re\\-read on SIGHUP (systemctl reload pybal).',
    '.TP',
    '.B /etc/pybal/pybal.conf.example',
    'An example that sets every key, each under a comment.',
    '.TP',
    '.B /etc/pybal/pools/',
    'The usual place of pool files.',
    '.SH "SEE ALSO"',
    '.BR pybal (8),',
    '.BR ipvsadm (8),',
    '.BR bird (8)',
  ];
  return lines.join('\n') + '\n';
}

export interface CommandDoc {
  readonly synopsis: string;
  readonly text: string;
}

/** pybal(8). `commands` are the subcommands as the program's --help lists them. */
export function pybalManPage(version: string, date: string, commands: readonly CommandDoc[]): string {
  const lines = [
    ...header('pybal', 8, version, date, 'System Administration'),
    '.SH NAME',
    'pybal \\- load\\-balancer control daemon for Linux LVS directors',
    '.SH SYNOPSIS',
    '.B pybal',
    '[\\fB\\-c\\fR \\fIFILE\\fR] [\\fB\\-n\\fR] [\\fB\\-d\\fR] [\\fB\\-\\-log\\-file\\fR \\fIFILE\\fR|\\fB\\-\\fR] [\\fB\\-\\-log\\-format\\fR text|json] [\\fB\\-\\-control\\-socket\\fR \\fIPATH\\fR]',
    '.br',
    '.B pybal',
    '\\fICOMMAND\\fR [\\fIOPTIONS\\fR]',
    '.SH DESCRIPTION',
    'pybal keeps the kernel\'s IPVS table as',
    '.BR pybal.conf (5)',
    'and its pool files say: it checks every real server with the monitors its service lists, pools and depools them',
    'under the service\'s depool threshold, programs IPVS over generic netlink, and announces each service IP to the',
    'routers with its own BGP speaker. It is a drop\\-in successor to PyBal and reads PyBal\'s configuration unchanged.',
    '.PP',
    'Without a command, pybal runs the daemon in the foreground; systemd runs it so (pybal.service).',
    '.SH OPTIONS',
    '.TP',
    '.BR \\-c ", " \\-\\-config " \\fIFILE\\fR"',
    'The configuration to read (default /etc/pybal/pybal.conf).',
    '.TP',
    '.BR \\-n ", " \\-\\-dry\\-run',
    'Run everything, change nothing in the kernel and announce nothing; log what would be done.',
    '.TP',
    '.BR \\-d ", " \\-\\-debug',
    'Log at debug level.',
    '.TP',
    '.BI \\-\\-log\\-file " FILE"',
    'Where to log (default /var/log/pybal.log; \\fB\\-\\fR for standard error).',
    '.TP',
    '.BI \\-\\-log\\-format " text|json"',
    'One readable line per event (the default), or JSON.',
    '.TP',
    '.BI \\-\\-control\\-socket " PATH"',
    'The Unix socket the commands below talk to (default /run/pybal/pybal.sock).',
    '.SH COMMANDS',
    ...commands.flatMap((c) => ['.TP', `.B ${roff(c.synopsis)}`, roff(c.text)]),
    '.SH SIGNALS',
    '.TP',
    '.B SIGHUP',
    'Reopen the log file and re\\-read the configuration. A configuration with errors, or with no service, is refused',
    'and the running one kept; a valid one is applied as a plan that touches only what changed.',
    '.TP',
    '.B SIGUSR1',
    'Reopen the log file only (logrotate).',
    '.TP',
    '.BR SIGTERM ", " SIGINT',
    'Stop: BGP withdraws every VIP and closes its sessions, the IPVS table is left as it is. With',
    '.B bgp\\-graceful\\-restart',
    'set, a SIGTERM that comes from',
    '.B systemctl restart',
    'closes the sessions without withdrawing, and the routers keep the routes until the new process is back.',
    '.SH FILES',
    '.TP',
    '.B /etc/pybal/pybal.conf',
    'The configuration; see',
    '.BR pybal.conf (5).',
    '.TP',
    '.B /var/log/pybal.log',
    'The log, rotated by logrotate.',
    '.TP',
    '.B /run/pybal/pybal.sock',
    'The control socket.',
    '.SH "EXIT STATUS"',
    'The daemon exits 0 after a clean stop and 1 when its configuration is invalid. Usage errors exit 2.',
    '.SH "SEE ALSO"',
    '.BR pybal.conf (5),',
    '.BR ipvsadm (8),',
    '.BR bird (8),',
    '.BR systemctl (1)',
  ];
  return lines.join('\n') + '\n';
}
