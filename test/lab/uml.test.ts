// Host-side tests of the guest runner: a command runs as root in a real
// kernel with IPVS, its output and exit status come back, and a hung guest
// is killed at its deadline with its console log kept.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { createHostLink } from './host-link.js';
import { runInGuest, shellQuote, umlKernelVersion } from './uml.js';

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('runInGuest', () => {
  it('runs a command as root in a kernel with IPVS and brings back output and exit status', async () => {
    const result = await runInGuest({
      argv: ['sh', '-c', 'id -u; uname -r; cat /proc/net/ip_vs | head -1; echo "$PYBAL_LAB_GUEST $GREETING"; exit 7'],
      env: { GREETING: "it's me" },
      timeoutMs: 120_000,
    });
    scratch.push(result.scratchDir);
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(7);
    expect(result.output.split('\n')).toEqual(['0', umlKernelVersion(), 'IP Virtual Server version 1.2.1 (size=4096)', "1 it's me", '']);
  }, 150_000);

  it('kills a hung guest at the deadline and keeps its console', async () => {
    const result = await runInGuest({ argv: ['sh', '-c', 'echo about to hang; sleep 600'], timeoutMs: 8_000 });
    scratch.push(result.scratchDir);
    expect(result.timedOut).toBe(true);
    expect(result.code).toBeNull();
    expect(result.output).toContain('about to hang');
    expect(existsSync(result.consolePath)).toBe(true);
    expect(readFileSync(result.consolePath, 'utf8')).toContain('about to hang');
    // No UML process of this run is left behind.
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(result.scratchDir) && l.includes('linux'));
    expect(left).toEqual([]);
  }, 150_000);
});

describe('runInGuest after the command', () => {
  it('does not wait for the deadline when a stray process keeps the output open', async () => {
    const result = await runInGuest({ argv: ['sh', '-c', '(sleep 600) & echo done; exit 4'], timeoutMs: 120_000 });
    scratch.push(result.scratchDir);
    expect(result.code).toBe(4);
    expect(result.timedOut).toBe(false);
    expect(result.output).toContain('done');
  }, 150_000);
});

describe('runInGuest with a link to the host', () => {
  const links = (): string[] => execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' }).split('\n').map((l) => l.split(/\s+/)[0] ?? '');

  it("gives the guest an eth0 on a host tap that reaches the host's browser agent, and removes the tap after", async () => {
    const result = await runInGuest({
      hostLink: true,
      argv: ['sh', '-c', 'ip -4 -br addr show hostbr; h=$(echo "$PYBAL_LAB_HOST_LINK" | sed -n \'s/.*"host":"\\([^"]*\\)".*/\\1/p\'); a=$(echo "$PYBAL_LAB_HOST_LINK" | sed -n \'s/.*"agent":"\\([^"]*\\)".*/\\1/p\'); ping -c 1 -W 5 "$h" >/dev/null && echo "ping ok"; curl -sS -m 5 "$a/none"'],
      timeoutMs: 120_000,
    });
    scratch.push(result.scratchDir);
    expect(result.hostLinkError).toBeUndefined();
    const plan = result.hostLink!;
    expect(plan.device).toMatch(/^pybal-tap\d+$/);
    expect(result.code).toBe(0);
    expect(result.output).toMatch(new RegExp(`hostbr\\s+\\S+\\s+${plan.guest.replaceAll('.', '\\.')}/29`));
    expect(result.output).toContain('ping ok');
    expect(result.output).toContain('{"error":"no GET /none"}');
    // Gone with the guest, and with it its address and route.
    expect(links()).not.toContain(plan.device);
    expect(execFileSync('ip', ['-4', 'route', 'show', plan.subnet], { encoding: 'utf8' }).trim()).toBe('');
  }, 150_000);

  it('removes a stale tap (its owner gone) before taking a slot', async () => {
    const stale = 'pybal-tap31';
    try {
      execFileSync('ip', ['tuntap', 'add', 'dev', stale, 'mode', 'tap'], { stdio: 'ignore' });
    } catch {
      // Slot 31 is in use by a live guest on this machine: nothing to prove with it now.
      expect(links()).toContain(stale);
      return;
    }
    // An owner that cannot be running: pid 1 with a start time it never had.
    execFileSync('ip', ['link', 'set', 'dev', stale, 'alias', 'pybal-lab host link pid=1 start=999999999999']);
    const link = await createHostLink();
    try {
      expect(links()).not.toContain(stale);
      expect(links()).toContain(link.plan.device);
    } finally {
      await link.remove();
    }
    expect(links()).not.toContain(link.plan.device);
  });

  it('tells the command why there is no link when there is none', async () => {
    const result = await runInGuest({ argv: ['sh', '-c', 'echo "[$PYBAL_LAB_HOST_LINK][$PYBAL_LAB_HOST_LINK_ERROR]"; ip -br link show eth0 2>&1 | head -1'], env: { PYBAL_LAB_HOST_LINK_ERROR: 'turned off' }, timeoutMs: 120_000 });
    scratch.push(result.scratchDir);
    expect(result.hostLink).toBeUndefined();
    expect(result.output).toContain('[][turned off]');
  }, 150_000);
});

describe('shellQuote', () => {
  it('leaves plain words alone and quotes the rest', () => {
    expect(shellQuote('ipvsadm')).toBe('ipvsadm');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('')).toBe("''");
  });
});
