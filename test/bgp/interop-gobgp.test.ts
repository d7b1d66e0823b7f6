/** Interoperation with GoBGP over IPv4 and IPv6 transport (see interop-suite.ts). */
import { defineInteropSuite } from './interop-suite.js';

defineInteropSuite('gobgp', 4, { router: 17921, router4: 17922, api: 27121, api4: 27122, source: '127.0.0.13', source4: '127.0.0.14' });
defineInteropSuite('gobgp', 6, { router: 17923, router4: 17924, api: 27123, api4: 27124, source: '::1', source4: '::1' });
