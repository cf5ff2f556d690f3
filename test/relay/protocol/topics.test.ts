import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_TOPIC_BYTES, MAX_TOPIC_DEPTH, MAX_TOPIC_SEGMENT_BYTES } from '../../../relay/protocol/limits.ts';
import {
  filterCovers,
  filterMeet,
  filtersIntersect,
  isValidFilter,
  isValidTopic,
  topicInNamespace,
  topicMatches,
  validateFilter,
  validateTopic,
} from '../../../relay/protocol/topics.ts';

/** Obviously correct and slow: recursion over split segments, MQTT 3.1.1 section 4.7.1. */
function referenceMatches(filter: string, topic: string): boolean {
  const match = (filterSegments: string[], topicSegments: string[]): boolean => {
    const [head, ...rest] = filterSegments;
    if (head === undefined) return topicSegments.length === 0;
    if (head === '#') return true;
    if (topicSegments.length === 0) return false;
    return (head === '+' || head === topicSegments[0]) && match(rest, topicSegments.slice(1));
  };
  return match(filter.split('/'), topic.split('/'));
}

function assertInvalid(run: () => void, reason: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof DmzError);
    assert.equal(error.code, 'RELAY_ERR_INVALID_TOPIC');
    assert.ok(error.message.includes(reason), `message "${error.message}" should contain "${reason}"`);
    return true;
  });
}

/** Every topic of depth 1..maxDepth over the given segments. */
function enumerateTopics(segments: readonly string[], maxDepth: number): string[] {
  const topics: string[] = [];
  let layer = [...segments];
  for (let depth = 1; depth <= maxDepth; depth++) {
    topics.push(...layer);
    layer = layer.flatMap((prefix) => segments.map((segment) => `${prefix}/${segment}`));
  }
  return topics;
}

/** Every valid filter of depth 1..maxDepth over the given literals, `+`, and a trailing `#`. */
function enumerateFilters(literals: readonly string[], maxDepth: number): string[] {
  const withoutHash = enumerateTopics([...literals, '+'], maxDepth - 1);
  return [
    ...enumerateTopics([...literals, '+'], maxDepth),
    '#',
    ...withoutHash.map((prefix) => `${prefix}/#`),
  ];
}

const long = (character: string, length: number): string => character.repeat(length);
/** Exactly MAX_TOPIC_BYTES: three full segments and one that fills the rest. */
const longestTopic = [
  long('a', 64),
  long('b', 64),
  long('c', 64),
  long('d', MAX_TOPIC_BYTES - 3 * 64 - 3),
].join('/');
const deepest = (segment: string): string => Array<string>(MAX_TOPIC_DEPTH).fill(segment).join('/');

// Small alphabets so that matches actually happen; `ab` catches prefix confusion in index walking.
const literal = fc.constantFrom('a', 'b', 'ab');
const topicArbitrary = fc
  .array(literal, { minLength: 1, maxLength: 6 })
  .map((segments) => segments.join('/'));
const filterArbitrary = fc
  .tuple(
    fc.array(fc.oneof({ arbitrary: literal, weight: 3 }, { arbitrary: fc.constant('+'), weight: 1 }), {
      maxLength: 5,
    }),
    fc.boolean(),
  )
  .map(([segments, hash]) => (hash || segments.length === 0 ? [...segments, '#'] : segments).join('/'));

/** A topic that `filter` matches, so properties are not vacuous. */
const matchingTopic = (filter: string): fc.Arbitrary<string> =>
  fc
    .tuple(fc.array(literal, { minLength: 5, maxLength: 5 }), fc.array(literal, { maxLength: 3 }))
    .map(([fillers, tail]) => {
      const segments = filter.split('/').flatMap((segment, level) => {
        if (segment === '+') return [fillers[level % fillers.length]!];
        if (segment === '#') return level === 0 && tail.length === 0 ? ['a'] : tail;
        return [segment];
      });
      return segments.join('/');
    });

/** Narrows a filter: literals for some `+`, some levels (or none) for `#`. */
const narrowedFilter = (filter: string): fc.Arbitrary<string> =>
  fc.tuple(fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }), filterArbitrary).map(([keep, suffix]) => {
    const segments = filter.split('/').flatMap((segment, level) => {
      if (segment === '+' && !keep[level]!) return ['a'];
      if (segment === '#' && !keep[level]!) return suffix.split('/');
      return [segment];
    });
    return segments.join('/');
  });

// The whole charset up to every limit: what the validators must accept.
const segmentCharacter = fc.constantFrom(
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-'.split(''),
);
const anySegment = fc
  .string({ unit: segmentCharacter, minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES })
  .filter((segment) => segment !== '.' && segment !== '..');
const anyTopic = fc
  .array(anySegment, { minLength: 1, maxLength: MAX_TOPIC_DEPTH })
  .map((segments) => segments.join('/'))
  .filter((topic) => topic.length <= MAX_TOPIC_BYTES);
const anyFilter = fc
  .array(fc.oneof(anySegment, fc.constant('+')), { minLength: 1, maxLength: MAX_TOPIC_DEPTH })
  .chain((segments) =>
    fc.boolean().map((hash) => (hash ? [...segments.slice(0, -1), '#'] : segments).join('/')),
  )
  .filter((filter) => filter.length <= MAX_TOPIC_BYTES);
const badCharacter = fc.constantFrom(
  '\u0000',
  '\t',
  '\n',
  '\r',
  '\u007f',
  ' ',
  '$',
  '*',
  '\\',
  ':',
  '"',
  'é',
  '\u2028',
  '\u{1F600}',
);

void describe('topic and filter validation', () => {
  const sharedBad: readonly { name: string; input: string; reason: string }[] = [
    { name: 'leading slash', input: '/a', reason: 'empty segment at level 1' },
    { name: 'trailing slash', input: 'a/', reason: 'empty segment at level 2' },
    { name: 'double slash', input: 'a//b', reason: 'empty segment at level 2' },
    { name: 'lone slash', input: '/', reason: 'empty segment at level 1' },
    { name: 'dot-dot segment', input: 'a/../b', reason: 'segment ".." is not allowed' },
    { name: 'dot segment', input: './a', reason: 'segment "." is not allowed' },
    { name: 'trailing dot-dot', input: 'a/..', reason: 'segment ".." is not allowed' },
    { name: 'space', input: 'a b', reason: 'space at offset 1' },
    { name: 'NUL', input: 'a\u0000b', reason: 'control character at offset 1' },
    { name: 'newline', input: 'a/b\nc', reason: 'control character at offset 3' },
    { name: 'DEL', input: 'a\u007f', reason: 'control character at offset 1' },
    { name: 'non-ASCII letter', input: 'caf\u00e9', reason: 'non-ASCII character at offset 3' },
    { name: 'emoji', input: 'a/\u{1F600}', reason: 'non-ASCII character at offset 2' },
    { name: 'multi-byte text within 256 characters', input: long('\u00e9', 200), reason: 'non-ASCII' },
    { name: 'leading dollar', input: '$SYS/broker', reason: 'must not start with "$"' },
    { name: 'dollar elsewhere', input: 'a/$b', reason: 'character "$" not allowed at offset 2' },
    { name: 'asterisk', input: 'a*', reason: 'character "*" not allowed at offset 1' },
    { name: 'backslash', input: 'a\\b', reason: 'character "\\" not allowed at offset 1' },
    { name: 'over 256 bytes', input: `${longestTopic}x`, reason: 'longer than 256 bytes' },
    {
      name: 'segment over 64 bytes',
      input: `a/${long('x', 65)}`,
      reason: 'segment at level 2 longer than 64 bytes',
    },
    { name: 'over 16 levels', input: `${deepest('a')}/a`, reason: 'deeper than 16 levels' },
  ];

  void describe('validateTopic rejects', () => {
    const topicBad = [
      ...sharedBad,
      { name: 'empty', input: '', reason: 'topic is empty' },
      { name: 'plus wildcard', input: 'a/+', reason: 'wildcard not allowed in a topic' },
      { name: 'hash wildcard', input: '#', reason: 'wildcard not allowed in a topic' },
      { name: 'wildcard inside a segment', input: 'a/b#', reason: 'wildcard not allowed in a topic' },
    ];
    for (const { name, input, reason } of topicBad) {
      void it(name, () => {
        assertInvalid(() => validateTopic(input), reason);
        assert.equal(isValidTopic(input), false);
      });
    }
  });

  void describe('validateFilter rejects', () => {
    const filterBad = [
      ...sharedBad,
      { name: 'empty', input: '', reason: 'filter is empty' },
      { name: 'plus glued to text', input: 'a+', reason: 'wildcard "+" must be a whole segment (level 1)' },
      { name: 'text after plus', input: 'a/+b', reason: 'wildcard "+" must be a whole segment (level 2)' },
      { name: 'hash glued to text', input: '#b', reason: 'wildcard "#" must be a whole segment (level 1)' },
      { name: 'double hash', input: '##', reason: 'must be a whole segment' },
      { name: 'hash before the end', input: 'a/#/b', reason: 'wildcard "#" must be the last segment' },
      { name: 'empty segment before hash', input: 'a//#', reason: 'empty segment at level 2' },
      { name: 'dot-dot with hash', input: '../#', reason: 'segment ".." is not allowed' },
    ];
    for (const { name, input, reason } of filterBad) {
      void it(name, () => {
        assertInvalid(() => validateFilter(input), reason);
        assert.equal(isValidFilter(input), false);
      });
    }
  });

  void it('accepts topics at every limit, as topics and as filters', () => {
    const good = [
      'a',
      'press-7/line_1/temp.C',
      'A-Z.a_z-0.9',
      '.hidden/a..b/...',
      long('x', MAX_TOPIC_SEGMENT_BYTES),
      longestTopic,
      deepest('a'),
    ];
    for (const topic of good) {
      assert.doesNotThrow(() => validateTopic(topic), topic);
      assert.doesNotThrow(() => validateFilter(topic), topic);
      assert.equal(isValidTopic(topic), true, topic);
    }
  });

  void it('accepts wildcard filters and refuses them as topics', () => {
    for (const filter of ['#', '+', '+/+/#', 'a/+/c/#', `${deepest('+').slice(0, -1)}#`]) {
      assert.doesNotThrow(() => validateFilter(filter), filter);
      assert.equal(isValidFilter(filter), true, filter);
      assert.equal(isValidTopic(filter), false, filter);
    }
  });

  void it('accepts every generated topic and filter', () => {
    fc.assert(
      fc.property(anyTopic, anyFilter, (topic, filter) => {
        validateTopic(topic);
        validateFilter(topic);
        validateFilter(filter);
      }),
      { numRuns: 500 },
    );
  });

  void it('rejects any topic or filter with a bad character injected', () => {
    fc.assert(
      fc.property(anyTopic, anyFilter, badCharacter, fc.nat(), (topic, filter, bad, position) => {
        for (const [valid, validate] of [
          [topic, validateTopic],
          [filter, validateFilter],
        ] as const) {
          const at = position % (valid.length + 1);
          assertInvalid(() => validate(valid.slice(0, at) + bad + valid.slice(at)), '');
        }
      }),
      { numRuns: 500 },
    );
  });

  void it('rejects wildcards injected into a topic and glued wildcards in a filter', () => {
    fc.assert(
      fc.property(
        anyTopic.filter((topic) => topic.length < MAX_TOPIC_BYTES),
        fc.constantFrom('+', '#'),
        fc.nat(),
        (topic, wildcard, position) => {
          const at = position % (topic.length + 1);
          const injected = topic.slice(0, at) + wildcard + topic.slice(at);
          assertInvalid(() => validateTopic(injected), 'wildcard not allowed in a topic');
          // Inserting never creates a segment of its own: the wildcard always touches other text.
          assert.equal(isValidFilter(injected), false, injected);
        },
      ),
      { numRuns: 300 },
    );
  });
});

void describe('topicMatches', () => {
  const cases: readonly [filter: string, topic: string, expected: boolean][] = [
    ['a', 'a', true],
    ['a', 'ab', false],
    ['ab', 'a', false],
    ['a/b', 'a', false],
    ['a', 'a/b', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'ab', false],
    ['a/#', 'ab/c', false],
    ['a/+', 'a', false],
    ['a/+', 'a/b', true],
    ['+', 'a/b', false],
    ['+/#', 'a', true],
    ['#', 'a/b/c', true],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/cd', false],
    ['+/+', 'a/b', true],
  ];
  for (const [filter, topic, expected] of cases) {
    void it(`${filter} ${expected ? 'matches' : 'does not match'} ${topic}`, () => {
      assert.equal(topicMatches(filter, topic), expected);
    });
  }

  void it('agrees with the reference matcher on random and on matching topics', () => {
    const pair = filterArbitrary.chain((filter) =>
      fc.tuple(fc.constant(filter), fc.oneof(topicArbitrary, matchingTopic(filter))),
    );
    fc.assert(
      fc.property(pair, ([filter, topic]) => {
        assert.equal(topicMatches(filter, topic), referenceMatches(filter, topic), `${filter} vs ${topic}`);
      }),
      { numRuns: 3000 },
    );
  });
});

void describe('filterCovers and filtersIntersect', () => {
  const coverCases: readonly [outer: string, inner: string, expected: boolean][] = [
    ['a/#', 'a/+/c', true],
    ['a/+', 'a/#', false],
    ['#', 'x', true],
    ['a/+/c', 'a/b/c', true],
    ['a/b/c', 'a/+/c', false],
    ['a/#', 'a', true],
    ['a/b/#', 'a/#', false],
    ['a', 'a/#', false],
    ['+/#', '#', true],
    ['+', '#', false],
    ['a/#', '#', false],
  ];
  for (const [outer, inner, expected] of coverCases) {
    void it(`${outer} ${expected ? 'covers' : 'does not cover'} ${inner}`, () => {
      assert.equal(filterCovers(outer, inner), expected);
    });
  }

  void it('finds no common topic when the shortest one would exceed 256 bytes', () => {
    const prefix = [long('x', 64), long('x', 64), long('x', 64)].join('/');
    const fits = `+/+/+/${long('y', MAX_TOPIC_BYTES - prefix.length - 1)}`;
    const tooLong = `+/+/+/${long('y', MAX_TOPIC_BYTES - prefix.length)}`;
    assert.equal(filtersIntersect(`${prefix}/#`, fits), true);
    assert.equal(filtersIntersect(`${prefix}/#`, tooLong), false);
    assert.equal(filtersIntersect(tooLong, `${prefix}/#`), false);
  });

  void it('matches brute force exactly over every filter of depth 3 or less', () => {
    // Topics one level deeper than the filters and one letter the filters never name: that is
    // where every counterexample to covering or intersecting lives.
    const filters = enumerateFilters(['a', 'b'], 3);
    const topics = enumerateTopics(['a', 'b', 'c'], 4);
    const matched = new Map(
      filters.map((filter) => [filter, topics.map((topic) => referenceMatches(filter, topic))]),
    );
    for (const outer of filters) {
      const outerMatches = matched.get(outer)!;
      for (const inner of filters) {
        const innerMatches = matched.get(inner)!;
        const covers = innerMatches.every((matches, index) => !matches || outerMatches[index]!);
        const intersect = innerMatches.some((matches, index) => matches && outerMatches[index]!);
        assert.equal(filterCovers(outer, inner), covers, `covers(${outer}, ${inner})`);
        assert.equal(filtersIntersect(outer, inner), intersect, `intersect(${outer}, ${inner})`);
      }
    }
  });

  void it('covers narrowed filters, and every topic of the inner filter matches the outer one', () => {
    const triple = filterArbitrary.chain((outer) =>
      fc
        .oneof(narrowedFilter(outer), filterArbitrary)
        .chain((inner) =>
          fc.tuple(fc.constant(outer), fc.constant(inner), fc.array(matchingTopic(inner), { maxLength: 10 })),
        ),
    );
    let covered = 0;
    fc.assert(
      fc.property(triple, ([outer, inner, topics]) => {
        if (!filterCovers(outer, inner)) return;
        covered++;
        for (const topic of topics)
          assert.ok(referenceMatches(outer, topic), `${outer} misses ${topic} of ${inner}`);
      }),
      { numRuns: 1000 },
    );
    assert.ok(covered > 100, `only ${covered} covering pairs generated`);
  });

  void it('agrees with brute force over deeper random filters', () => {
    const literals = ['a', 'b', 'ab', 'c'];
    const topics = enumerateTopics(literals, 5);
    const shallowFilter = filterArbitrary.filter((filter) => filter.split('/').length <= 4);
    fc.assert(
      fc.property(shallowFilter, shallowFilter, (a, b) => {
        const aMatches = topics.map((topic) => referenceMatches(a, topic));
        const bMatches = topics.map((topic) => referenceMatches(b, topic));
        const covers = bMatches.every((matches, index) => !matches || aMatches[index]!);
        const intersect = bMatches.some((matches, index) => matches && aMatches[index]!);
        assert.equal(filterCovers(a, b), covers, `covers(${a}, ${b})`);
        assert.equal(filtersIntersect(a, b), intersect, `intersect(${a}, ${b})`);
        assert.equal(filtersIntersect(b, a), intersect, `intersect(${b}, ${a})`);
      }),
      { numRuns: 200 },
    );
  });
});

void describe('filterMeet and filtersIntersect of several filters', () => {
  const meetCases: readonly [a: string, b: string, meet: string | undefined][] = [
    ['a/#', 'a', 'a'],
    ['#', 'a/#', 'a/#'],
    ['#', '#', '#'],
    ['#', '+/#', '#'],
    ['+/#', 'a/+/#', 'a/+/#'],
    ['a/+', '+/b', 'a/b'],
    ['a/+', 'a/#', 'a/+'],
    ['a/#', 'b/#', undefined],
    ['a', 'a/+', undefined],
    ['a/b/#', 'a', undefined],
    ['+/+', '+', undefined],
    ['#', 'x/y/z', 'x/y/z'],
  ];
  for (const [a, b, meet] of meetCases) {
    void it(`meet of ${a} and ${b} is ${meet ?? 'empty'}`, () => {
      assert.equal(filterMeet(a, b), meet);
      assert.equal(filterMeet(b, a), meet);
    });
  }

  void it('the meet is a valid filter even where the shortest common topic leaves no room for "/#"', () => {
    const [x, y, z] = [long('x', 64), long('y', 64), long('z', 64)];
    // Four levels: 3 * 64 bytes, three slashes, and a last segment filling the topic to `bytes`.
    const lastFor = (bytes: number) => long('w', bytes - 3 * 64 - 3);
    for (const bytes of [MAX_TOPIC_BYTES - 2, MAX_TOPIC_BYTES - 1, MAX_TOPIC_BYTES]) {
      const w = lastFor(bytes);
      const meet = filterMeet(`${x}/${y}/+/+/#`, `+/+/${z}/${w}/#`);
      assert.ok(meet !== undefined, `no meet at ${bytes} bytes`);
      assert.ok(isValidFilter(meet), `meet at ${bytes} bytes is not a valid filter`);
      // One more level (two bytes at least) still fits only while the topic is two bytes short.
      const open = bytes + 2 <= MAX_TOPIC_BYTES;
      assert.equal(meet, `${x}/${y}/${z}/${w}${open ? '/#' : ''}`, `meet at ${bytes} bytes`);
    }
  });

  void it('keeps the topic-length bound across all filters, not only pairwise', () => {
    const [x, y, z] = [long('x', 64), long('y', 64), long('z', 64)];
    const filters = (w: string) => [`${x}/+/+/+`, `+/${y}/+/+`, `+/+/${z}/+`, `+/+/+/${w}`];
    const fits = filters(long('w', MAX_TOPIC_BYTES - 3 * 64 - 3));
    const tooLong = filters(long('w', MAX_TOPIC_BYTES - 3 * 64 - 2));
    for (const [a, b] of tooLong.flatMap((a, i) => tooLong.slice(i + 1).map((b) => [a, b] as const))) {
      assert.equal(filtersIntersect(a, b), true, 'every pair alone has a common topic');
    }
    const [first, ...rest] = fits;
    const [tooLongFirst, ...tooLongRest] = tooLong;
    assert.equal(filtersIntersect(first!, ...rest), true);
    assert.equal(filtersIntersect(tooLongFirst!, ...tooLongRest), false);
  });

  // Segments a, b, + and # to depth 3; topics over a, b and a letter no filter names, one level
  // deeper: where a wrong meet (a literal for a `+`, a closed end for a `#`) shows.
  const tinyFilter = fc
    .array(fc.constantFrom('a', 'b', '+', '#'), { minLength: 1, maxLength: 3 })
    .map((segments) => {
      const hash = segments.indexOf('#');
      return (hash === -1 ? segments : segments.slice(0, hash + 1)).join('/');
    });
  const tinyTopics = enumerateTopics(['a', 'b', 'c'], 4);

  void it('the meet of two filters matches exactly the topics both match (brute force)', () => {
    let nonEmpty = 0;
    fc.assert(
      fc.property(tinyFilter, tinyFilter, (a, b) => {
        const both = tinyTopics.filter((topic) => referenceMatches(a, topic) && referenceMatches(b, topic));
        const meet = filterMeet(a, b);
        if (both.length === 0) {
          assert.equal(meet, undefined, `meet(${a}, ${b})`);
          return;
        }
        nonEmpty++;
        assert.ok(meet !== undefined && isValidFilter(meet), `meet(${a}, ${b}) = ${meet}`);
        for (const topic of tinyTopics) {
          assert.equal(
            topicMatches(meet, topic),
            both.includes(topic),
            `meet(${a}, ${b}) = ${meet} vs ${topic}`,
          );
        }
      }),
      { numRuns: 2000 },
    );
    assert.ok(nonEmpty > 200, `only ${nonEmpty} intersecting pairs generated`);
  });

  void it('several filters intersect iff some topic matches them all (brute force)', () => {
    let intersecting = 0;
    let disjoint = 0;
    fc.assert(
      fc.property(fc.array(tinyFilter, { minLength: 1, maxLength: 4 }), ([first, ...rest]) => {
        const filters = [first!, ...rest];
        const expected = tinyTopics.some((topic) =>
          filters.every((filter) => referenceMatches(filter, topic)),
        );
        if (expected) intersecting++;
        else disjoint++;
        assert.equal(filtersIntersect(first!, ...rest), expected, `intersect(${filters.join(', ')})`);
      }),
      { numRuns: 3000 },
    );
    assert.ok(intersecting > 300 && disjoint > 300, `${intersecting} intersecting, ${disjoint} disjoint`);
  });
});

void describe('topicInNamespace', () => {
  const cases: readonly [namespace: string, topic: string, expected: boolean][] = [
    ['press-7', 'press-7', true],
    ['press-7', 'press-7/line/temp', true],
    ['press-7', 'press-70/line', false],
    ['press-7', 'press', false],
    ['press-7', 'other/press-7', false],
    ['site/press-7', 'site/press-7/temp', true],
    ['', 'press-7', false],
  ];
  for (const [namespace, topic, expected] of cases) {
    void it(`${topic} is ${expected ? '' : 'not '}in namespace "${namespace}"`, () => {
      assert.equal(topicInNamespace(namespace, topic), expected);
    });
  }
});
