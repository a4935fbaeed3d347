import { describe, expect, it } from 'vitest';
import { type BreakingKind, breakingChanges } from './openapi-diff.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the table edits arbitrary places of a plain document
type Doc = any;

/** A small API: a read, a JSON create, a multipart upload, schemas with refs, enums, arrays, nullables and a cycle. */
function base(): Doc {
  return {
    openapi: '3.0.0',
    info: { title: 'Things', version: '1' },
    paths: {
      '/things': {
        post: {
          operationId: 'createThing',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/NewThing' } } } },
          responses: {
            '201': { description: 'Created', content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } } },
          },
        },
        get: {
          operationId: 'listThings',
          parameters: [{ name: 'page', in: 'query', required: false, schema: { type: 'integer' } }],
          responses: {
            '200': {
              description: 'OK',
              content: { 'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/Thing' } } } },
            },
          },
        },
      },
      '/things/{id}': {
        parameters: [{ $ref: '#/components/parameters/Id' }],
        get: {
          operationId: 'getThing',
          parameters: [{ name: 'verbose', in: 'query', required: false, schema: { type: 'boolean' } }],
          responses: {
            '200': { description: 'OK', content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } } },
            '404': { description: 'Not found' },
          },
        },
        delete: { operationId: 'deleteThing', responses: { '204': { description: 'Deleted' } } },
      },
      '/things/{id}/images': {
        parameters: [{ $ref: '#/components/parameters/Id' }],
        post: {
          operationId: 'uploadImages',
          requestBody: {
            required: true,
            content: { 'multipart/form-data': { schema: { $ref: '#/components/schemas/ImageForm' } } },
          },
          responses: { '201': { description: 'Stored', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
    components: {
      parameters: { Id: { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } } },
      schemas: {
        NewThing: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string' }, note: { type: 'string' }, color: { type: 'string', enum: ['red', 'green'] } },
        },
        Named: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, color: { type: 'string' } } },
        Thing: {
          allOf: [
            { $ref: '#/components/schemas/Named' },
            {
              type: 'object',
              required: ['id', 'status', 'size', 'tree'],
              properties: {
                id: { type: 'string', format: 'uuid' },
                status: { type: 'string', enum: ['queued', 'done'] },
                size: { type: 'integer' },
                owner: { type: 'string', nullable: true },
                tags: { type: 'array', items: { type: 'string' } },
                tree: { $ref: '#/components/schemas/Node' },
                result: { oneOf: [{ $ref: '#/components/schemas/Box' }, { $ref: '#/components/schemas/Mask' }] },
              },
            },
          ],
        },
        Node: {
          type: 'object',
          properties: { label: { type: 'string' }, children: { type: 'array', items: { $ref: '#/components/schemas/Node' } } },
        },
        Box: { type: 'object', properties: { x: { type: 'number' } } },
        Mask: { type: 'object', properties: { rle: { type: 'string' } } },
        ImageForm: {
          type: 'object',
          required: ['images'],
          properties: { images: { type: 'array', items: { type: 'string', format: 'binary' } } },
        },
      },
    },
  };
}

const s = (d: Doc) => d.components.schemas;
const thing = (d: Doc) => s(d).Thing.allOf[1];

const breaking: [string, (d: Doc) => void, BreakingKind[]][] = [
  ['a path removed', (d) => delete d.paths['/things/{id}/images'], ['path-removed']],
  ['an operation removed', (d) => delete d.paths['/things/{id}'].delete, ['operation-removed']],
  ['a query parameter removed', (d) => (d.paths['/things/{id}'].get.parameters = []), ['parameter-removed']],
  ['a path parameter renamed', (d) => (d.components.parameters.Id.name = 'thingId'), ['parameter-removed', 'parameter-required']],
  [
    'a new required query parameter',
    (d) => d.paths['/things'].get.parameters.push({ name: 'sort', in: 'query', required: true, schema: { type: 'string' } }),
    ['parameter-required'],
  ],
  ['an optional parameter made required', (d) => (d.paths['/things'].get.parameters[0].required = true), ['parameter-required']],
  ['a parameter retyped', (d) => (d.paths['/things/{id}'].get.parameters[0].schema.type = 'string'), ['type-changed']],
  ['a path parameter reformatted', (d) => (d.components.parameters.Id.schema.format = 'int64'), ['type-changed']],
  [
    'a request body made required',
    (d) =>
      (d.paths['/things/{id}'].delete.requestBody = { required: true, content: { 'application/json': { schema: { type: 'object' } } } }),
    ['request-body-required'],
  ],
  [
    'a request media type removed',
    (d) => {
      const body = d.paths['/things/{id}/images'].post.requestBody;
      body.content = { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } };
    },
    ['media-type-removed'],
  ],
  [
    'a new required request property',
    (d) => {
      s(d).NewThing.properties.size = { type: 'integer' };
      s(d).NewThing.required.push('size');
    },
    ['request-property-required'],
  ],
  ['an optional request property made required', (d) => s(d).NewThing.required.push('note'), ['request-property-required']],
  ['a request property removed', (d) => delete s(d).NewThing.properties.note, ['request-property-removed']],
  ['a request property retyped', (d) => (s(d).NewThing.properties.note = { type: 'integer' }), ['type-changed']],
  ['a request enum value removed', (d) => (s(d).NewThing.properties.color.enum = ['red']), ['enum-value-removed']],
  [
    'a multipart file field renamed',
    (d) => (s(d).ImageForm = { type: 'object', required: ['file'], properties: { file: { type: 'string', format: 'binary' } } }),
    ['request-property-removed', 'request-property-required'],
  ],
  [
    'a multipart file array made a single file',
    (d) => (s(d).ImageForm.properties.images = { type: 'string', format: 'binary' }),
    ['type-changed'],
  ],
  [
    'a success status changed (201 to 200)',
    (d) => {
      const r = d.paths['/things'].post.responses;
      r['200'] = r['201'];
      delete r['201'];
    },
    ['response-status-removed'],
  ],
  [
    'a response media type removed',
    (d) => {
      const r = d.paths['/things/{id}'].get.responses['200'];
      r.content = { 'application/xml': r.content['application/json'] };
    },
    ['media-type-removed'],
  ],
  ['a response property removed', (d) => delete thing(d).properties.size, ['response-property-removed']],
  ['a response property from an allOf part removed', (d) => delete s(d).Named.properties.color, ['response-property-removed']],
  ['a response property retyped', (d) => (thing(d).properties.size = { type: 'string' }), ['type-changed']],
  ['an integer response property widened to number', (d) => (thing(d).properties.size = { type: 'number' }), ['type-changed']],
  ['a response property made nullable', (d) => (thing(d).properties.size.nullable = true), ['type-changed']],
  ['a response property reformatted', (d) => (thing(d).properties.id.format = 'uri'), ['type-changed']],
  ['a required response property made optional', (d) => (thing(d).required = ['id', 'status', 'tree']), ['response-property-optional']],
  ['a response enum value removed', (d) => (thing(d).properties.status.enum = ['done']), ['enum-value-removed']],
  ['an array item retyped in a response', (d) => (thing(d).properties.tags.items = { type: 'integer' }), ['type-changed']],
  ['a response id retyped from string to integer', (d) => (s(d).Thing.allOf[1].properties.id.type = 'integer'), ['type-changed']],
  ['a property removed deep in a cyclic schema', (d) => delete s(d).Node.properties.label, ['response-property-removed']],
  ['a oneOf alternative removed', (d) => (thing(d).properties.result.oneOf = [{ $ref: '#/components/schemas/Box' }]), ['variant-removed']],
  ['a property removed inside a oneOf alternative', (d) => delete s(d).Mask.properties.rle, ['response-property-removed']],
  [
    'a response split into alternatives, one of which drops a property',
    (d) => {
      const r = d.paths['/things/{id}'].get.responses['200'].content['application/json'];
      r.schema = { oneOf: [{ $ref: '#/components/schemas/Thing' }, { $ref: '#/components/schemas/Box' }] };
    },
    ['response-property-removed'],
  ],
];

const compatible: [string, (d: Doc) => void][] = [
  ['nothing changed', () => undefined],
  ['a new path', (d) => (d.paths['/other'] = { get: { responses: { '200': { description: 'OK' } } } })],
  ['a new operation', (d) => (d.paths['/things/{id}'].patch = { responses: { '200': { description: 'OK' } } })],
  ['a new optional parameter', (d) => d.paths['/things'].get.parameters.push({ name: 'q', in: 'query', schema: { type: 'string' } })],
  ['a request body made optional', (d) => (d.paths['/things/{id}/images'].post.requestBody.required = false)],
  ['a new optional request property', (d) => (s(d).NewThing.properties.size = { type: 'integer' })],
  ['a required request property made optional', (d) => (s(d).NewThing.required = [])],
  ['a request enum value added', (d) => s(d).NewThing.properties.color.enum.push('blue')],
  ['a request property made nullable', (d) => (s(d).NewThing.properties.note.nullable = true)],
  ['an integer request property widened to number', (d) => (d.paths['/things'].get.parameters[0].schema.type = 'number')],
  [
    'a new request media type',
    (d) => (d.paths['/things'].post.requestBody.content['application/x-www-form-urlencoded'] = { schema: { type: 'object' } }),
  ],
  ['a new response property', (d) => (thing(d).properties.created_at = { type: 'string', format: 'date-time' })],
  ['an optional response property made required', (d) => thing(d).required.push('owner')],
  ['a nullable response property made non-null', (d) => delete thing(d).properties.owner.nullable],
  ['a response enum value added', (d) => thing(d).properties.status.enum.push('failed')],
  ['a new success status', (d) => (d.paths['/things'].post.responses['200'] = { description: 'Already there' })],
  ['an error status removed', (d) => delete d.paths['/things/{id}'].get.responses['404']],
  ['a new oneOf alternative', (d) => thing(d).properties.result.oneOf.push({ type: 'object', properties: {} })],
  [
    'an untyped response object given a schema',
    (d) => {
      const r = d.paths['/things/{id}/images'].post.responses['201'].content['application/json'];
      r.schema = { $ref: '#/components/schemas/Box' };
    },
  ],
  [
    'a schema moved inline (same shape)',
    (d) =>
      (d.paths['/things/{id}'].get.responses['200'].content['application/json'].schema = structuredClone(base().components.schemas.Thing)),
  ],
  [
    'a response split into alternatives that each keep its properties',
    (d) => {
      const r = d.paths['/things/{id}'].get.responses['200'].content['application/json'];
      // Each alternative narrows the status enum to one value (a discriminator): together they keep every value.
      const kind = (k: string) => ({
        allOf: [{ $ref: '#/components/schemas/Thing' }, { properties: { status: { type: 'string', enum: [k] } } }],
      });
      r.schema = { oneOf: [kind('queued'), kind('done')], discriminator: { propertyName: 'status' } };
    },
  ],
  [
    'a oneOf alternative replaced by a compatible successor',
    (d) =>
      (thing(d).properties.result.oneOf[1] = {
        type: 'object',
        required: ['rle'],
        properties: { rle: { type: 'string' }, size: { type: 'array', items: { type: 'integer' } } },
      }),
  ],
  ['descriptions and examples changed', (d) => Object.assign(thing(d).properties.size, { description: 'Bytes', example: 3 })],
];

describe('breakingChanges: every breaking kind is found', () => {
  it.each(breaking)('%s', (_name, edit, kinds) => {
    const after = base();
    edit(after);
    const found = breakingChanges(base(), after);
    expect([...new Set(found.map((c) => c.kind))].sort()).toEqual(kinds.sort());
  });
});

describe('breakingChanges: additive and loosening changes pass', () => {
  it.each(compatible)('%s', (_name, edit) => {
    const after = base();
    edit(after);
    expect(breakingChanges(base(), after)).toEqual([]);
  });
});

describe('breakingChanges: reports', () => {
  it('names the operation, the status, the media type and the property', () => {
    const after = base();
    delete thing(after).properties.size;
    expect(breakingChanges(base(), after)).toContainEqual({
      kind: 'response-property-removed',
      at: 'GET /things response 200 application/json[] .size',
      message: 'GET /things response 200 application/json[] .size: response property was removed',
    });
  });

  it('compares the real contract with itself without a finding', async () => {
    const { readFileSync } = await import('node:fs');
    const { parse } = await import('yaml');
    const doc = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as unknown;
    expect(breakingChanges(doc, structuredClone(doc))).toEqual([]);
    expect(breakingChanges(doc, { openapi: '3.0.0', paths: {} }).length).toBeGreaterThan(10);
  });
});
