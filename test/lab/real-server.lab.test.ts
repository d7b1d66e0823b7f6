// Self-test: real servers in the lab can be told to fail. One told to go
// down stops answering (connection refused); one told to hang accepts the
// connection and never answers; told 'ok' again, both answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from './lab.js';

describe('lab: real servers told to fail', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ realServers: 2, router: 'none', families: [4, 6], realServer: { http: 80, tcp: 8080 } });
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
});
