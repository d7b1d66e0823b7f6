// Host-side tests of the guest runner: a command runs as root in a real
// kernel with IPVS, its output and exit status come back, and a hung guest
// is killed at its deadline with its console log kept.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
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

describe('shellQuote', () => {
  it('leaves plain words alone and quotes the rest', () => {
    expect(shellQuote('ipvsadm')).toBe('ipvsadm');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('')).toBe("''");
  });
});
