/**
 * A Dockerfile read into its stages and instructions, enough to lint one where no container
 * engine runs: line continuations, comments, parser directives, `--flag=value` options, exec
 * (JSON) and shell forms. The syntax is Docker's "Dockerfile reference".
 */

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, USER, ... */
  readonly keyword: string;
  readonly flags: ReadonlyMap<string, string>;
  /** The arguments after the flags, as written (continuations joined with a space). */
  readonly args: string;
  /** The exec form's array, when the arguments are one (`CMD ["node", "x.js"]`). */
  readonly exec: readonly string[] | undefined;
  readonly line: number;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  readonly stages: readonly Stage[];
  /** Every comment's text, without its `#`. */
  readonly comments: readonly string[];
}

export function parseDockerfile(text: string): Dockerfile {
  const comments: string[] = [];
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('#')) {
      comments.push(line.slice(1).trim());
      return;
    }
    if (pending === '' && line === '') return;
    if (pending === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      return;
    }
    instructions.push(parseInstruction(`${pending}${line}`.trim(), startLine));
    pending = '';
  });
  if (pending !== '') instructions.push(parseInstruction(pending.trim(), startLine));

  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = instruction.args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG')
        throw new Error(`line ${instruction.line}: ${instruction.keyword} before FROM`);
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { stages, comments };
}

function parseInstruction(text: string, line: number): Instruction {
  const [word = '', ...rest] = text.split(/\s+/);
  const flags = new Map<string, string>();
  while (rest[0]?.startsWith('--') === true) {
    const flag = rest.shift()!.slice(2);
    const equals = flag.indexOf('=');
    flags.set(equals < 0 ? flag : flag.slice(0, equals), equals < 0 ? '' : flag.slice(equals + 1));
  }
  const args = rest.join(' ');
  return { keyword: word.toUpperCase(), flags, args, exec: execForm(args), line };
}

function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(args);
    return Array.isArray(parsed) && parsed.every((item) => typeof item === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}
