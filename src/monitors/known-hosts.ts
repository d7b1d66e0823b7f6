/**
 * A reader for OpenSSH known_hosts files, enough to pin host keys: plain and
 * hashed (`|1|salt|hash`) host entries, `[host]:port`, `*`/`?` patterns and
 * `!` negations, `@revoked`; `@cert-authority` lines are ignored. Pure.
 */

export interface KnownHostEntry {
  readonly marker: 'revoked' | undefined;
  readonly patterns: readonly string[];
  readonly keyType: string;
  readonly key: Buffer;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: 'revoked' | undefined;
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@cert-authority') continue;
      if (m === '@revoked') marker = 'revoked';
      else continue;
    }
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) continue;
    entries.push({ marker, patterns: hosts.split(','), keyType, key: Buffer.from(key, 'base64') });
  }
  return entries;
}

/** The names a server is known by: `host` for port 22, `[host]:port` otherwise. */
export function knownHostNames(names: readonly string[], port: number): string[] {
  return names.map((n) => (port === 22 ? n : `[${n}]:${port}`));
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    // node:crypto at the first hashed name, not with the checks thread.
    const { createHmac, timingSafeEqual } = process.getBuiltinModule('node:crypto');
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    const expected = Buffer.from(hash, 'base64');
    return expected.length === digest.length && timingSafeEqual(expected, digest);
  }
  return globMatch(pattern, name);
}

/** Whether an entry's host patterns cover one of the names (a negated match excludes). */
export function entryMatches(entry: KnownHostEntry, names: readonly string[]): boolean {
  return names.some((name) => {
    let matched = false;
    for (const p of entry.patterns) {
      if (p.startsWith('!')) {
        if (patternMatches(p.slice(1), name)) return false;
      } else if (patternMatches(p, name)) matched = true;
    }
    return matched;
  });
}

/** Verdict for a presented host key blob. */
export function verifyHostKey(entries: readonly KnownHostEntry[], names: readonly string[], key: Buffer): { ok: boolean; reason: string } {
  const mine = entries.filter((e) => entryMatches(e, names));
  if (mine.some((e) => e.marker === 'revoked' && e.key.equals(key))) return { ok: false, reason: 'host key is revoked in known_hosts' };
  if (mine.some((e) => e.marker === undefined && e.key.equals(key))) return { ok: true, reason: 'host key matches known_hosts' };
  if (mine.length === 0) return { ok: false, reason: `no known_hosts entry for ${names.join(', ')}` };
  return { ok: false, reason: 'host key does not match known_hosts' };
}
