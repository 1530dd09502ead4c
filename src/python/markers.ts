/**
 * PEP 508 environment markers: parsing and evaluation against one target environment.
 * Version-valued keys compare with PEP 440 (`python_version >= '3.10'`, `python_full_version`),
 * other keys as strings; `in`/`not in` are substring tests on strings and list membership on
 * versions (as uv does for `python_version in '2.6 2.7'`); `extra == 'x'` compares normalized
 * names (PEP 685) against the active extras. uv encodes conflict markers as extras named
 * `extra-<n>-<package>-<extra>` / `group-<n>-<package>-<group>`; they evaluate against the same set.
 */
import { matchesSpecifier, parseSpecifier, tryParseVersion, type SpecifierOperator } from './pep440.js';

export interface MarkerEnvironment {
  implementation_name: string;
  implementation_version: string;
  os_name: string;
  platform_machine: string;
  platform_python_implementation: string;
  platform_release: string;
  platform_system: string;
  platform_version: string;
  python_full_version: string;
  python_version: string;
  sys_platform: string;
}

export type MarkerVariable = keyof MarkerEnvironment | 'extra';

export type MarkerOperator = SpecifierOperator | 'in' | 'not in';

export type MarkerValue = { kind: 'variable'; name: MarkerVariable } | { kind: 'string'; value: string };

export type MarkerExpression =
  | { kind: 'compare'; left: MarkerValue; operator: MarkerOperator; right: MarkerValue }
  | { kind: 'and' | 'or'; items: MarkerExpression[] };

const VERSION_VARIABLES = new Set<MarkerVariable>(['python_version', 'python_full_version', 'implementation_version']);

/** Old spellings (PEP 345 / setuptools) that PEP 508 parsers still accept. */
const ALIASES: Record<string, MarkerVariable> = {
  'os.name': 'os_name',
  'sys.platform': 'sys_platform',
  'platform.version': 'platform_version',
  'platform.machine': 'platform_machine',
  'platform.python_implementation': 'platform_python_implementation',
  python_implementation: 'platform_python_implementation',
};

const VARIABLES = new Set<string>([
  'implementation_name', 'implementation_version', 'os_name', 'platform_machine', 'platform_python_implementation',
  'platform_release', 'platform_system', 'platform_version', 'python_full_version', 'python_version', 'sys_platform', 'extra',
]);

export class MarkerSyntaxError extends Error {
  override readonly name = 'MarkerSyntaxError';
}

type Token = { kind: 'string'; value: string } | { kind: 'word'; value: string } | { kind: 'op'; value: string } | { kind: 'paren'; value: '(' | ')' };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '(' || ch === ')') {
      tokens.push({ kind: 'paren', value: ch });
      i++;
    } else if (ch === '"' || ch === "'") {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) throw new MarkerSyntaxError(`unterminated string in marker ${JSON.stringify(text)}`);
      tokens.push({ kind: 'string', value: text.slice(i + 1, end) });
      i = end + 1;
    } else {
      const op = /^(===|==|!=|<=|>=|~=|<|>)/.exec(text.slice(i));
      if (op) {
        tokens.push({ kind: 'op', value: op[1]! });
        i += op[1]!.length;
        continue;
      }
      const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(i));
      if (!word) throw new MarkerSyntaxError(`unexpected ${JSON.stringify(ch)} in marker ${JSON.stringify(text)}`);
      tokens.push({ kind: 'word', value: word[0] });
      i += word[0].length;
    }
  }
  return tokens;
}

/** Parses a marker expression (the part after `;` in a requirement). */
export function parseMarker(text: string): MarkerExpression {
  const tokens = tokenize(text);
  let position = 0;
  const peek = () => tokens[position];
  const fail = (what: string): never => {
    throw new MarkerSyntaxError(`${what} in marker ${JSON.stringify(text)}`);
  };
  const isWord = (token: Token | undefined, value: string) => token?.kind === 'word' && token.value === value;

  function value(): MarkerValue {
    const token = tokens[position++];
    if (!token) return fail('expected a value at the end');
    if (token.kind === 'string') return { kind: 'string', value: token.value };
    if (token.kind === 'word') {
      const name = ALIASES[token.value] ?? token.value;
      if (!VARIABLES.has(name)) fail(`unknown marker variable ${JSON.stringify(token.value)}`);
      return { kind: 'variable', name: name as MarkerVariable };
    }
    return fail(`unexpected ${JSON.stringify(token.value)}`);
  }

  function operator(): MarkerOperator {
    const token = tokens[position++];
    if (token?.kind === 'op') return token.value as MarkerOperator;
    if (isWord(token, 'in')) return 'in';
    if (isWord(token, 'not') && isWord(tokens[position], 'in')) {
      position++;
      return 'not in';
    }
    return fail(`expected a comparison operator${token ? ` at ${JSON.stringify(token.value)}` : ''}`);
  }

  function atom(): MarkerExpression {
    const token = peek();
    if (token?.kind === 'paren' && token.value === '(') {
      position++;
      const inner = or();
      const close = tokens[position++];
      if (!(close?.kind === 'paren' && close.value === ')')) fail('expected )');
      return inner;
    }
    const left = value();
    const op = operator();
    const right = value();
    if (left.kind === right.kind) fail('a comparison needs one variable and one quoted string');
    return { kind: 'compare', left, operator: op, right };
  }

  function and(): MarkerExpression {
    const items = [atom()];
    while (isWord(peek(), 'and')) {
      position++;
      items.push(atom());
    }
    return items.length === 1 ? items[0]! : { kind: 'and', items };
  }

  function or(): MarkerExpression {
    const items = [and()];
    while (isWord(peek(), 'or')) {
      position++;
      items.push(and());
    }
    return items.length === 1 ? items[0]! : { kind: 'or', items };
  }

  if (tokens.length === 0) fail('empty expression');
  const expression = or();
  if (position !== tokens.length) fail(`unexpected ${JSON.stringify(tokens[position]!.value)}`);
  return expression;
}

/** PEP 503/685 name normalization: lowercase, runs of -_. become -. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/[-_.]+/g, '-');
}

const REVERSED: Partial<Record<MarkerOperator, MarkerOperator>> = { '<': '>', '>': '<', '<=': '>=', '>=': '<=' };

function compareStrings(left: string, operator: MarkerOperator, right: string): boolean {
  switch (operator) {
    case '==':
    case '===':
      return left === right;
    case '!=':
      return left !== right;
    case '<':
      return left < right;
    case '<=':
      return left <= right;
    case '>':
      return left > right;
    case '>=':
      return left >= right;
    case 'in':
      return right.includes(left);
    case 'not in':
      return !right.includes(left);
    case '~=':
      return false;
  }
}

/** `variable <op> literal` for a version variable. */
function compareVersion(variable: string, operator: MarkerOperator, literal: string): boolean {
  if (operator === 'in' || operator === 'not in') {
    // Membership in a whitespace/comma separated list of versions (uv), not substring search.
    const list = literal.split(/[\s,]+/).filter(Boolean);
    const found = list.some((item) => {
      try {
        return matchesSpecifier(variable, parseSpecifier(`==${item}`));
      } catch {
        return item === variable;
      }
    });
    return operator === 'in' ? found : !found;
  }
  if (!tryParseVersion(variable)) return compareStrings(variable, operator, literal);
  try {
    return matchesSpecifier(variable, parseSpecifier(`${operator}${literal}`));
  } catch {
    // Not a valid specifier (e.g. `~=3`): fall back to string comparison, as packaging does.
    return compareStrings(variable, operator, literal);
  }
}

function evaluateCompare(
  expression: Extract<MarkerExpression, { kind: 'compare' }>,
  environment: MarkerEnvironment,
  extras: ReadonlySet<string>,
): boolean {
  const { left, right } = expression;
  let operator = expression.operator;
  // Normalize to `variable <op> literal`; `literal in variable` stays a substring test on the variable.
  if (left.kind === 'string' && right.kind === 'variable') {
    if (operator === 'in' || operator === 'not in') {
      if (right.name === 'extra') return operator === 'in' ? extras.has(normalizeName(left.value)) : !extras.has(normalizeName(left.value));
      const haystack = environment[right.name];
      return operator === 'in' ? haystack.includes(left.value) : !haystack.includes(left.value);
    }
    operator = REVERSED[operator] ?? operator;
    return evaluateCompare({ kind: 'compare', left: right, operator, right: left }, environment, extras);
  }
  if (left.kind !== 'variable' || right.kind !== 'string') return false;
  if (left.name === 'extra') {
    const wanted = normalizeName(right.value);
    if (operator === '==' || operator === '===') return extras.has(wanted);
    if (operator === '!=') return !extras.has(wanted);
    return false;
  }
  const actual = environment[left.name];
  if (VERSION_VARIABLES.has(left.name)) return compareVersion(actual, operator, right.value);
  return compareStrings(actual, operator, right.value);
}

/** Evaluates a parsed or textual marker; `extras` are the active extras (normalized or not). */
export function evaluateMarker(
  marker: MarkerExpression | string | undefined,
  environment: MarkerEnvironment,
  extras: Iterable<string> = [],
): boolean {
  if (marker === undefined) return true;
  if (typeof marker === 'string' && marker.trim() === '') return true;
  const expression = typeof marker === 'string' ? parseMarkerCached(marker) : marker;
  const active = extras instanceof Set ? (extras as Set<string>) : new Set([...extras].map(normalizeName));
  return evaluateExpression(expression, environment, active);
}

function evaluateExpression(expression: MarkerExpression, environment: MarkerEnvironment, extras: ReadonlySet<string>): boolean {
  switch (expression.kind) {
    case 'compare':
      return evaluateCompare(expression, environment, extras);
    case 'and':
      return expression.items.every((item) => evaluateExpression(item, environment, extras));
    case 'or':
      return expression.items.some((item) => evaluateExpression(item, environment, extras));
  }
}

const cache = new Map<string, MarkerExpression>();
function parseMarkerCached(text: string): MarkerExpression {
  let parsed = cache.get(text);
  if (!parsed) {
    parsed = parseMarker(text);
    cache.set(text, parsed);
  }
  return parsed;
}

/** The variables and literal values a marker mentions (for building comparison environments). */
export function markerLiterals(expression: MarkerExpression, into: Map<MarkerVariable, Set<string>> = new Map()): Map<MarkerVariable, Set<string>> {
  if (expression.kind === 'compare') {
    const variable = expression.left.kind === 'variable' ? expression.left : expression.right.kind === 'variable' ? expression.right : undefined;
    const literal = expression.left.kind === 'string' ? expression.left : expression.right.kind === 'string' ? expression.right : undefined;
    if (variable?.kind === 'variable' && literal?.kind === 'string') {
      let set = into.get(variable.name);
      if (!set) into.set(variable.name, (set = new Set()));
      set.add(literal.value);
    }
  } else {
    for (const item of expression.items) markerLiterals(item, into);
  }
  return into;
}
