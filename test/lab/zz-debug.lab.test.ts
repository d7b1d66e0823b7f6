import { writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { startLab } from './lab.js';
it('dump', async () => {
  const lab = await startLab({ router: 'bird', realServers: 1, realServer: false });
  const t0 = Date.now();
  const speaker = await lab.startGobgpSpeaker();
  const t1 = Date.now();
  await lab.router.waitForPeer(lab.addr.director.v4!, 'established', 30_000);
  const t2 = Date.now();
  await speaker.announce('203.0.113.1/32', { med: 100, communities: ['64600:1', '64600:200'], nextHop: lab.addr.director.v4! });
  await speaker.announce('2001:db8:3::1/128', { nextHop: lab.addr.director.v6! });
  await new Promise((r) => setTimeout(r, 1500));
  const bird = lab.router as import('./routers/bird.js').BirdDaemon;
  const out = (await bird.cli(['show', 'route', 'all'])).stdout + '\n=====\n' + (await bird.cli(['show', 'protocols', 'all'])).stdout + `\n=====\nspeaker start ${t1 - t0} established ${t2 - t1}\n` + speaker.log();
  writeFileSync('/work/wt/lab/.lab-scratch/dbg/bird.txt', out);
  await lab.stop();
  expect(1).toBe(1);
});
