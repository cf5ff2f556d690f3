/**
 * What each role may do on the API (IEC 62443-3-3 SR 2.1): `read` uses the routes that only read,
 * `write` those too and the ones that change the plant. Each route of routes.ts names the role it
 * needs; api-server.ts checks it for every request, after validation and before the handler.
 */
import type { ApiRole } from './api-config.ts';
import type { ApiCaller } from './auth.ts';

/** Whether a caller of `role` may use a route that needs `needed`. */
export function mayUse(role: ApiRole, needed: ApiRole): boolean {
  return needed === 'read' || role === 'write';
}

/** Why a caller is refused a route that needs role write. */
export function forbidden(caller: ApiCaller): string {
  return caller.user === undefined
    ? 'a write needs a named user of role write (it.api.users): this API has no users'
    : `user ${caller.user} has role ${caller.role}: this needs role write`;
}
