// Self-test: real servers in the lab can be told to fail. One told to go
// down stops answering (connection refused); one told to hang accepts the
// connection and never answers; told 'ok' again, both answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './exec.js';
import { startLab, type Lab } from './lab.js';

describe('lab: real servers told to fail', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ realServers: 2, router: 'none', families: [4, 6], realServer: { http: 80, https: 443, tcp: 8080 } });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const direct = (name: string, family: 4 | 6): string => {
    const rs = lab.realServer(name).addr;
    return family === 4 ? `http://${rs.v4}/` : `http://[${rs.v6}]/`;
  };

  it('answers directly from the client when healthy', async () => {
    const answer = await lab.client.get(direct('rs1', 4));
    expect(answer.status).toBe(200);
    expect(answer.servedBy).toBe('rs1');
    expect(answer.body).toBe('served-by rs1\n');
    expect((await lab.client.get(direct('rs2', 6))).servedBy).toBe('rs2');
    const tls = await lab.client.exec(['curl', '-sS', '-k', '-m', '5', `https://${lab.realServer('rs1').addr.v4}/`]);
    expect(tls.stdout).toBe('served-by rs1\n');
  });

  it('a server told to go down refuses connections', async () => {
    await lab.realServer('rs1').setBehaviour({ mode: 'down' });
    const answer = await lab.client.get(direct('rs1', 4), { timeoutMs: 3_000 });
    expect(answer.curlExit).toBe(7); // couldn't connect
    expect(answer.status).toBeUndefined();
    expect((await lab.client.get(direct('rs2', 4))).servedBy).toBe('rs2');
  });

  it('a server told to hang accepts and never answers', async () => {
    await lab.realServer('rs2').setBehaviour({ mode: 'hang' });
    const before = (await lab.realServer('rs2').stats()).tcpConnections;
    const answer = await lab.client.get(direct('rs2', 6), { timeoutMs: 2_000 });
    expect(answer.curlExit).toBe(28); // timed out after connecting
    expect(answer.status).toBeUndefined();
    expect((await lab.realServer('rs2').stats()).tcpConnections).toBeGreaterThan(before);
  });

  it('told ok again, both answer', async () => {
    await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
    await lab.realServer('rs2').setBehaviour({ mode: 'ok' });
    expect((await lab.client.get(direct('rs1', 6))).servedBy).toBe('rs1');
    expect((await lab.client.get(direct('rs2', 4))).servedBy).toBe('rs2');
  });

  it('a steady client through the VIP sees a real server fail and come back', async () => {
    await lab.addIpvsService({ family: 4, scheduler: 'rr' });
    const load = lab.client.startLoad(lab.vipUrl(4), { requestTimeoutMs: 1_000 });
    await waitFor(async () => (load.countByServer()['rs1'] ?? 0) >= 2 || undefined, { what: 'answers from rs1' });
    await lab.realServer('rs1').setBehaviour({ mode: 'down' });
    const failedFrom = load.answers.length;
    // While rs1 is down the client sees it refuse and rs2 keep serving; rs1
    // is told ok only once both were seen (rr alternates, so the refusal alone
    // can be the only answer in a short window).
    await waitFor(
      async () => {
        const since = load.answers.slice(failedFrom);
        return (since.some((a) => a.curlExit === 7) && since.some((a) => a.servedBy === 'rs2')) || undefined;
      },
      { what: 'a refused request and an answer from rs2 while rs1 is down' },
    );
    await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
    const backFrom = load.answers.length;
    await waitFor(async () => load.answers.slice(backFrom).some((a) => a.servedBy === 'rs1') || undefined, { what: 'rs1 answering again' });
    const answers = await load.stop();
    expect(answers.every((a) => a.servedBy !== undefined || a.curlExit === 7)).toBe(true);
    expect(answers.slice(failedFrom, backFrom).some((a) => a.servedBy === 'rs2')).toBe(true);
  });
});
