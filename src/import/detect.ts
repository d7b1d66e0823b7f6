/**
 * Which of the two formats a file is, from its text (and, when the text
 * does not say, its name). Pure.
 */

import type { ImportFormat } from './model.js';

const LDIRECTORD_LINE = /^(virtual6?\s*=|\s+real6?\s*=)/m;
const KEEPALIVED_LINE = /^\s*(virtual_server|virtual_server_group|real_server|vrrp_instance|vrrp_sync_group|global_defs)\b[^=\n]*(\{|$)/m;

/** keepalived, ldirectord, or undefined when neither the text nor the name tells. */
export function detectFormat(text: string, file: string): ImportFormat | undefined {
  const ldirectord = LDIRECTORD_LINE.test(text);
  const keepalived = KEEPALIVED_LINE.test(text);
  if (ldirectord !== keepalived) return ldirectord ? 'ldirectord' : 'keepalived';
  const name = file.split('/').pop() ?? file;
  if (/ldirectord|\.cf$/i.test(name)) return 'ldirectord';
  if (/keepalived/i.test(name)) return 'keepalived';
  return undefined;
}
