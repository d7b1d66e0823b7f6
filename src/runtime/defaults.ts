/**
 * Where pybal's files live by default. A module of constants only, with no
 * imports, so that the light commands (`pybal --version`, `status`, `check`)
 * can name these paths without loading the daemon (see src/cli/main.ts).
 */

/** The configuration that `pybal` and `pybal check-config` read. */
export const DEFAULT_CONFIG_FILE = '/etc/pybal/pybal.conf';

/** The daemon's log. */
export const DEFAULT_LOG_FILE = '/var/log/pybal.log';

/** The Unix socket the daemon always serves its API on (`pybal status`, `pybal check`). */
export const DEFAULT_SOCKET_PATH = '/run/pybal/pybal.sock';

/** Where `pybal import` says the pool files will live on the director. */
export const DEFAULT_POOL_DIR = '/etc/pybal/pools';
