// Self-test: BGP between a stand-in speaker in the director and GoBGP as the router (see bgp-self-test.ts).
import { describeBgpSelfTest } from './bgp-self-test.js';

describeBgpSelfTest('gobgp');
