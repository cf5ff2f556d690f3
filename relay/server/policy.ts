/**
 * Relay policy: who may do what, compiled from the config's rules. Deny by default: an agent no
 * rule names is not admitted at all, and an admitted agent may do only what some rule grants.
 */
import { ROLES, type AgentIdentity, type Role } from '../protocol/identity.ts';
import { filterCovers, filtersIntersect, topicInNamespace, topicMatches } from '../protocol/topics.ts';
import type { PolicyRule } from './config.ts';

export interface Grants {
  readonly subscribe: readonly string[];
  readonly command: readonly string[];
  readonly tunnel: readonly string[];
  readonly publish: readonly string[];
}

export class Policy {
  /**
   * Every identity's grants, compiled once from the rules: the union of the rules for its role, and
   * for a name some rule names, of those too. Keyed by what the rules name only, so asking about any
   * number of other names (a peer in a sessionOpen frame is the sender's choice) allocates nothing.
   */
  readonly #byRole: ReadonlyMap<Role, Grants>;
  readonly #byRoleAndName: ReadonlyMap<string, Grants>;

  constructor(rules: readonly PolicyRule[]) {
    const byRole = new Map<Role, Grants>();
    const byRoleAndName = new Map<string, Grants>();
    for (const role of [ROLES.ot, ROLES.it]) {
      const forRole = rules.filter((rule) => rule.role === role);
      if (forRole.length > 0) byRole.set(role, unionOf(forRole));
      const names = new Set(rules.flatMap((rule) => (rule.agent === undefined ? [] : [rule.agent])));
      for (const name of names) {
        byRoleAndName.set(
          `${role}/${name}`,
          unionOf(rules.filter((rule) => rule.role === role || rule.agent === name)),
        );
      }
    }
    this.#byRole = byRole;
    this.#byRoleAndName = byRoleAndName;
  }

  /** The union of every rule naming this agent or its role; null when none does. */
  grantsFor(identity: AgentIdentity): Grants | null {
    return (
      this.#byRoleAndName.get(`${identity.role}/${identity.name}`) ?? this.#byRole.get(identity.role) ?? null
    );
  }

  admits(identity: AgentIdentity): boolean {
    return this.grantsFor(identity) !== null;
  }

  /**
   * An IT agent may have a session with an OT agent under `filter` only if some topic lies in the
   * filter, in one of the IT agent's subscribe, command or tunnel grants, and among the OT agent's
   * own topics (its services are `<name>/<service>`), all at once: pairwise overlaps would let a grant for `press-7/#` open `#` with press-9.
   * Asked at session open and again, for every live session, when policy is reloaded.
   */
  mayOpenSession(it: AgentIdentity, ot: AgentIdentity, filter: string): boolean {
    const grants = this.grantsFor(it);
    const owned = this.#ownFiltersOf(ot);
    if (grants === null || it.role !== 'it' || owned === undefined) return false;
    return [...grants.subscribe, ...grants.command, ...grants.tunnel].some((grant) =>
      owned.some((own) => filtersIntersect(filter, grant, own)),
    );
  }

  /** A subscription must lie wholly inside one subscribe grant. */
  maySubscribe(identity: AgentIdentity, filter: string): boolean {
    return this.grantsFor(identity)?.subscribe.some((grant) => filterCovers(grant, filter)) ?? false;
  }

  /**
   * A subscription inside a session lies in a subscribe grant and can match some topic the
   * session's OT agent owns within the session filter: the OT agent is never asked for topics that
   * are not its own.
   */
  maySubscribeInSession(
    it: AgentIdentity,
    ot: AgentIdentity,
    sessionFilter: string,
    filter: string,
  ): boolean {
    if (!this.maySubscribe(it, filter)) return false;
    return this.#ownFiltersOf(ot)?.some((own) => filtersIntersect(filter, sessionFilter, own)) ?? false;
  }

  /**
   * A stream to `service` of OT agent `ot`: a tunnel grant of the IT agent matches
   * `<ot-agent>/<service>`, and `ot` is an OT agent policy admits. Asked at stream open and again,
   * for every open stream, when policy is reloaded.
   */
  mayTunnel(it: AgentIdentity, ot: AgentIdentity, service: string): boolean {
    if (it.role !== 'it' || this.#ownFiltersOf(ot) === undefined) return false;
    const target = `${ot.name}/${service}`;
    return this.grantsFor(it)?.tunnel.some((grant) => topicMatches(grant, target)) ?? false;
  }

  mayCommand(identity: AgentIdentity, topic: string): boolean {
    return this.grantsFor(identity)?.command.some((grant) => topicMatches(grant, topic)) ?? false;
  }

  /** The filters of the topics an OT agent owns: its namespace and its publish grants. */
  #ownFiltersOf(ot: AgentIdentity): readonly string[] | undefined {
    const grants = ot.role === 'ot' ? this.grantsFor(ot) : null;
    return grants === null ? undefined : [`${ot.name}/#`, ...grants.publish];
  }

  /** OT agents publish under their own name, and wherever a publish grant says more. */
  mayPublish(identity: AgentIdentity, topic: string): boolean {
    if (identity.role !== 'ot') return false;
    const grants = this.grantsFor(identity);
    if (grants === null) return false;
    return (
      topicInNamespace(identity.name, topic) || grants.publish.some((grant) => topicMatches(grant, topic))
    );
  }
}

function unionOf(rules: readonly PolicyRule[]): Grants {
  return {
    subscribe: rules.flatMap((rule) => rule.subscribe),
    command: rules.flatMap((rule) => rule.command),
    tunnel: rules.flatMap((rule) => rule.tunnel),
    publish: rules.flatMap((rule) => rule.publish),
  };
}
