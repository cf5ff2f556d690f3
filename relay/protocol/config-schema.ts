/**
 * Checking a configuration section against its TypeBox schema, the same way for every section
 * (the relay's config, the agent's, each source's): every problem as a ConfigIssue with its key
 * path, in words an operator can act on; the checked value deeply frozen (STYLE.md point 6).
 */
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import type { ConfigIssue } from './errors.ts';

/**
 * Every schema error of `value`, each path prefixed with `at` (the section's own key path, such as
 * `/sources/2`). Fill defaults first (Value.Default), so a missing key with a default is no error.
 */
export function collectSchemaIssues(schema: TSchema, value: unknown, at = ''): ConfigIssue[] {
  return dedupeIssues([...Value.Errors(schema, value)].map((error) => describeSchemaError(error, at)));
}

/** A schema error in words an operator can act on: a union of literals lists the allowed values. */
export function describeSchemaError(error: ValueError, at = ''): ConfigIssue {
  const path = `${at}${error.path}`;
  const options = (error.schema.anyOf as TSchema[] | undefined)?.map((option) => option.const as unknown);
  if (options !== undefined && options.every((option) => typeof option === 'string')) {
    return { path, message: `must be one of: ${options.join(', ')}` };
  }
  if (error.type === ValueErrorType.ObjectAdditionalProperties) return { path, message: 'unknown key' };
  if (error.type === ValueErrorType.ObjectRequiredProperty) return { path, message: 'is required' };
  return { path, message: error.message };
}

/** The issues without repeats (a union's branches often report the same problem twice). */
export function dedupeIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.path}\u0000${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
