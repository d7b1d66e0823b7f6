/** The files shipped under etc/ that tell systemd and logrotate how to signal pybal. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** The lines of a file that are not comments. */
function directives(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

describe('etc/logrotate.d/pybal', () => {
  const lines = directives('etc/logrotate.d/pybal');
  const postrotate = lines.slice(lines.indexOf('postrotate') + 1, lines.indexOf('endscript'));

  it('has pybal reopen its log with SIGUSR1, which does not re-read pybal.conf', () => {
    expect(postrotate.length).toBeGreaterThan(0);
    expect(postrotate.join('\n')).toMatch(/systemctl kill --kill-whom=main --signal=USR1 pybal\.service/);
  });

  it('never sends SIGHUP, which would reload the configuration every rotation', () => {
    expect(postrotate.join('\n')).not.toMatch(/HUP/);
  });
});

describe('etc/pybal.service', () => {
  const lines = directives('etc/pybal.service');

  it('reloads with SIGHUP', () => {
    expect(lines).toContain('ExecReload=/bin/kill -HUP $MAINPID');
  });

  it('checks the configuration before starting', () => {
    expect(lines.find((l) => l.startsWith('ExecStartPre='))).toMatch(/pybal check-config/);
  });
});
