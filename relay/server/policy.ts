/**
 * Relay policy: who may do what, compiled from the config's rules. Deny by default: an agent no
 * rule names is not admitted at all, and an admitted agent may do only what some rule grants.
 */
import type { AgentIdentity } from '../protocol/identity.ts';
import { filterCovers, filtersIntersect, topicInNamespace, topicMatches } from '../protocol/topics.ts';
import type { PolicyRule } from './config.ts';

export interface Grants {
  readonly subscribe: readonly string[];
  readonly command: readonly string[];
  readonly tunnel: readonly string[];
  readonly publish: readonly string[];
}

export class Policy {
  readonly #rules: readonly PolicyRule[];
  /** Grants per agent name, cached: identities are few, lookups are per frame. */
  readonly #cache = new Map<string, Grants | null>();

  constructor(rules: readonly PolicyRule[]) {
    this.#rules = rules;
  }

  /** The union of every rule naming this agent or its role; null when none does. */
  grantsFor(identity: AgentIdentity): Grants | null {
    const key = `${identity.role}/${identity.name}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const matching = this.#rules.filter(
      (rule) => rule.agent === identity.name || rule.role === identity.role,
    );
    const grants =
      matching.length === 0
        ? null
        : {
            subscribe: matching.flatMap((rule) => rule.subscribe),
            command: matching.flatMap((rule) => rule.command),
            tunnel: matching.flatMap((rule) => rule.tunnel),
            publish: matching.flatMap((rule) => rule.publish),
          };
    this.#cache.set(key, grants);
    return grants;
  }

  admits(identity: AgentIdentity): boolean {
    return this.grantsFor(identity) !== null;
  }

  /** An IT agent may open a session whose filter overlaps something it may subscribe or command. */
  mayOpenSession(requester: AgentIdentity, filter: string): boolean {
    const grants = this.grantsFor(requester);
    if (grants === null || requester.role !== 'it') return false;
    return [...grants.subscribe, ...grants.command].some((grant) => filtersIntersect(grant, filter));
  }

  /** A subscription must lie wholly inside one subscribe grant. */
  maySubscribe(identity: AgentIdentity, filter: string): boolean {
    return this.grantsFor(identity)?.subscribe.some((grant) => filterCovers(grant, filter)) ?? false;
  }

  mayCommand(identity: AgentIdentity, topic: string): boolean {
    return this.grantsFor(identity)?.command.some((grant) => topicMatches(grant, topic)) ?? false;
  }

  /**
   * Whether `filter` can match any topic the OT agent owns (its namespace and publish grants):
   * a session with that agent carries nothing else, so a session filter outside them is refused.
   */
  ownsTopicsIn(ot: AgentIdentity, filter: string): boolean {
    if (ot.role !== 'ot') return false;
    const grants = this.grantsFor(ot);
    if (grants === null) return false;
    return (
      filtersIntersect(`${ot.name}/#`, filter) ||
      grants.publish.some((grant) => filtersIntersect(grant, filter))
    );
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
