import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';

/** The subset of an OpenAPI 3.0 schema object that openapi.yaml uses. */
interface Schema {
  $ref?: string;
  type?: 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean';
  nullable?: boolean;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  oneOf?: Schema[];
  anyOf?: Schema[];
  allOf?: Schema[];
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
}

export type Validate = (schemaName: string, body: unknown) => string[];

/**
 * Validates bodies against the component schemas of the committed openapi.yaml (the subset of OpenAPI 3.0 it uses:
 * type, nullable, enum, properties/required, items with min/maxItems, oneOf/anyOf/allOf, $ref, discriminator).
 * Closed by default: an object schema that lists its properties refuses any other (unless it says
 * additionalProperties), so a field the server sends but the contract does not describe fails as surely as a missing
 * or mistyped one. Formats and numeric ranges are not checked.
 */
export function openApiValidator(): Validate {
  const doc = parse(readFileSync(resolve(import.meta.dirname, '../../openapi.yaml'), 'utf8')) as {
    components: { schemas: Record<string, Schema> };
  };
  const schemas = doc.components.schemas;
  const deref = (s: Schema): Schema => {
    if (!s.$ref) return s;
    const name = s.$ref.replace('#/components/schemas/', '');
    const target = schemas[name];
    if (!target) throw new Error(`openapi.yaml: dangling ${s.$ref}`);
    return target;
  };

  function check(s0: Schema, v: unknown, at: string, closed: boolean): string[] {
    const s = deref(s0);
    if (v === null) return s.nullable || s0.nullable ? [] : [`${at}: null where the schema is not nullable`];
    if (s.enum && !s.enum.includes(v)) return [`${at}: ${JSON.stringify(v)} not in ${JSON.stringify(s.enum)}`];
    if (s.allOf) {
      const errors = s.allOf.flatMap((x) => check(x, v, at, closed));
      if (errors.length) return errors;
    }
    if (s.oneOf || s.anyOf) {
      const options = (s.oneOf ?? s.anyOf)!;
      if (s.discriminator && v && typeof v === 'object') {
        const tag = (v as Record<string, unknown>)[s.discriminator.propertyName];
        const ref = s.discriminator.mapping?.[String(tag)];
        if (!ref) return [`${at}: discriminator ${s.discriminator.propertyName}=${JSON.stringify(tag)} has no mapping`];
        return check({ $ref: ref }, v, at, closed);
      }
      const results = options.map((x) => check(x, v, at, closed));
      const ok = results.filter((r) => r.length === 0).length;
      if (s.oneOf ? ok !== 1 : ok === 0) {
        return [`${at}: matches ${ok} of ${options.length} alternatives`, ...(ok === 0 ? results.flat() : [])];
      }
      return [];
    }
    switch (s.type) {
      case undefined:
        return [];
      case 'string':
        return typeof v === 'string' ? [] : [`${at}: ${JSON.stringify(v)} is not a string`];
      case 'boolean':
        return typeof v === 'boolean' ? [] : [`${at}: ${JSON.stringify(v)} is not a boolean`];
      case 'number':
        return typeof v === 'number' && Number.isFinite(v) ? [] : [`${at}: ${JSON.stringify(v)} is not a number`];
      case 'integer':
        return Number.isInteger(v) ? [] : [`${at}: ${JSON.stringify(v)} is not an integer`];
      case 'array': {
        if (!Array.isArray(v)) return [`${at}: not an array`];
        const errors: string[] = [];
        if (s.minItems !== undefined && v.length < s.minItems) errors.push(`${at}: ${v.length} items < ${s.minItems}`);
        if (s.maxItems !== undefined && v.length > s.maxItems) errors.push(`${at}: ${v.length} items > ${s.maxItems}`);
        if (s.items) v.forEach((x, i) => errors.push(...check(s.items!, x, `${at}[${i}]`, closed)));
        return errors;
      }
      case 'object': {
        if (typeof v !== 'object' || Array.isArray(v)) return [`${at}: not an object`];
        const o = v as Record<string, unknown>;
        const errors: string[] = [];
        for (const r of s.required ?? []) if (!(r in o)) errors.push(`${at}: missing ${r}`);
        for (const [k, x] of Object.entries(o)) {
          const p = s.properties?.[k];
          if (p) errors.push(...check(p, x, `${at}.${k}`, closed));
          else if (typeof s.additionalProperties === 'object') errors.push(...check(s.additionalProperties, x, `${at}.${k}`, closed));
          else if (s.additionalProperties === false || (closed && s.properties && s.additionalProperties === undefined)) {
            errors.push(`${at}: ${k} is not in the schema`);
          }
        }
        return errors;
      }
    }
  }

  return (schemaName, body) => {
    if (!schemas[schemaName]) return [`no schema ${schemaName} in openapi.yaml`];
    return check({ $ref: `#/components/schemas/${schemaName}` }, body, schemaName, true);
  };
}
