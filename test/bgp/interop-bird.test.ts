/** Interoperation with BIRD 2 over IPv4 and IPv6 transport (see interop-suite.ts). */
import { defineInteropSuite } from './interop-suite.js';

defineInteropSuite('bird', 4, { router: 17911, router4: 17912, api: 0, api4: 0, source: '127.0.0.11', source4: '127.0.0.12' });
defineInteropSuite('bird', 6, { router: 17913, router4: 17914, api: 0, api4: 0, source: '::1', source4: '::1' });
