/** PEP 508 dependency specifiers: `name[extra,...] (specifiers) ; marker` or `name[extra] @ url ; marker`. */
import { parseMarker, normalizeName, type MarkerExpression } from './markers.js';
import { parseSpecifiers, type Specifier } from './pep440.js';

export interface Requirement {
  /** As written. */
  name: string;
  /** PEP 503 normalized. */
  normalizedName: string;
  extras: string[];
  specifiers: Specifier[];
  url?: string;
  marker?: string;
  parsedMarker?: MarkerExpression;
}

const NAME = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*/;

/** Parses one PEP 508 requirement; throws Error with a short reason when it is not one. */
export function parseRequirement(text: string): Requirement {
  const name = NAME.exec(text);
  if (!name) throw new Error(`${JSON.stringify(text)} is not a PEP 508 requirement (no package name)`);
  let rest = text.slice(name[0].length);
  const requirement: Requirement = { name: name[1]!, normalizedName: normalizeName(name[1]!), extras: [], specifiers: [] };
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new Error(`${JSON.stringify(text)}: unclosed [ in extras`);
    requirement.extras = rest
      .slice(1, close)
      .split(',')
      .map((extra) => extra.trim())
      .filter(Boolean)
      .map(normalizeName);
    rest = rest.slice(close + 1).trimStart();
  }
  let markerText: string | undefined;
  if (rest.startsWith('@')) {
    // URL requirement: the URL ends at whitespace followed by ';' (a ';' inside the URL is kept).
    const match = /^@\s*(\S+)(?:\s+;\s*(.*))?\s*$/.exec(rest);
    if (!match) throw new Error(`${JSON.stringify(text)}: malformed URL requirement`);
    requirement.url = match[1]!;
    markerText = match[2];
  } else {
    const semicolon = rest.indexOf(';');
    let versionPart = semicolon >= 0 ? rest.slice(0, semicolon) : rest;
    markerText = semicolon >= 0 ? rest.slice(semicolon + 1) : undefined;
    versionPart = versionPart.trim();
    if (versionPart.startsWith('(') && versionPart.endsWith(')')) versionPart = versionPart.slice(1, -1);
    try {
      requirement.specifiers = parseSpecifiers(versionPart);
    } catch (error) {
      throw new Error(`${JSON.stringify(text)}: ${(error as Error).message}`);
    }
  }
  if (markerText !== undefined && markerText.trim() !== '') {
    requirement.marker = markerText.trim();
    try {
      requirement.parsedMarker = parseMarker(requirement.marker);
    } catch (error) {
      throw new Error(`${JSON.stringify(text)}: ${(error as Error).message}`);
    }
  }
  return requirement;
}
