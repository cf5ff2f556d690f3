/**
 * The role as a TypeBox schema, for every schema that carries one: frames, relay.yaml's policy
 * rules, an agent's identity.json. Apart from identity.ts so that code without schemas (the
 * dmz-pki CLI) does not load TypeBox at start.
 */
import { Type } from '@sinclair/typebox';
import { ROLES } from './identity.ts';

export const RoleSchema = Type.Union([Type.Literal(ROLES.ot), Type.Literal(ROLES.it)]);
