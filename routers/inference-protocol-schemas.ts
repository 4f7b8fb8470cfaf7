import { z } from 'zod';
import type { InferResponse, ModelMetadataResponse } from '../services/inference-protocol';
import type { Fits } from './schemas';

// Request and response bodies of the Open Inference Protocol (KServe v2) REST API, as its
// specification defines them: https://github.com/kserve/kserve/blob/master/docs/predict-api/v2/required_api.md
// Names are snake_case because the protocol fixes them.

/** Free-form parameters of a request, an input or an output: names with string, number or boolean values. */
export const protocolParameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).meta({ id: 'InferenceParameters' });

export const requestInput = z
  .strictObject({
    name: z.string().meta({ description: 'Name of the input tensor; see the model metadata' }),
    shape: z.array(z.number().int().min(0)).meta({ description: 'Shape of the whole batch: [N, height, width, channels] or [N, height × width × channels]' }),
    datatype: z.string().meta({ description: 'Only FP32 is accepted' }),
    parameters: protocolParameters.optional(),
    data: z.array(z.unknown()).meta({
      description: 'Values in 0..1 in row-major order, flat or nested as the shape. The binary tensor extension is not supported.',
    }),
  })
  .meta({ id: 'InferenceRequestInput' });

export const requestOutput = z
  .strictObject({ name: z.string(), parameters: protocolParameters.optional() })
  .meta({ id: 'InferenceRequestOutput' });

/** Body of POST /v2/models/{name}/infer. */
export const inferenceRequest = z
  .strictObject({
    id: z.string().optional().meta({ description: 'Returned in the response when given' }),
    // KServe's Python client sends the model's name and version in the body as well as in the URL.
    model_name: z.string().optional().meta({ description: 'Must equal the name in the URL when given' }),
    model_version: z.string().optional().meta({ description: 'Must equal the served version when given' }),
    parameters: protocolParameters.optional(),
    inputs: z.array(requestInput).min(1, 'send one input tensor'),
    outputs: z.array(requestOutput).optional().meta({ description: 'The outputs to return; all of them when absent' }),
  })
  .meta({ id: 'InferenceRequest' });

export type InferenceRequest = z.infer<typeof inferenceRequest>;

export const serverMetadataSchema = z
  .strictObject({ name: z.string(), version: z.string(), extensions: z.array(z.string()) })
  .meta({ id: 'InferenceServerMetadata' });

export const serverLiveSchema = z.strictObject({ live: z.literal(true) }).meta({ id: 'InferenceServerLive' });

export const serverReadySchema = z.strictObject({ ready: z.literal(true) }).meta({ id: 'InferenceServerReady' });

export const modelReadySchema = z.strictObject({ name: z.string(), ready: z.literal(true) }).meta({ id: 'InferenceModelReady' });

export const tensorMetadataSchema = z
  .strictObject({
    name: z.string(),
    datatype: z.string(),
    shape: z.array(z.number().int().min(-1)).meta({ description: '-1 marks a dimension of any size' }),
  })
  .meta({ id: 'InferenceTensorMetadata' });

export const modelMetadataSchema = z
  .strictObject({
    name: z.string(),
    versions: z.array(z.string()),
    platform: z.string(),
    inputs: z.array(tensorMetadataSchema),
    outputs: z.array(tensorMetadataSchema),
  })
  .meta({ id: 'InferenceModelMetadata' });

const outputFields = { name: z.string(), shape: z.array(z.number().int().min(0)) };
const flatData = { description: 'Flat, in row-major order' };

export const responseOutputSchema = z
  .discriminatedUnion('datatype', [
    z.strictObject({ ...outputFields, datatype: z.literal('FP32'), data: z.array(z.number()).meta(flatData) }),
    z.strictObject({ ...outputFields, datatype: z.literal('BYTES'), data: z.array(z.string()).meta(flatData) }),
  ])
  .meta({ id: 'InferenceResponseOutput' });

export const inferenceResponseSchema = z
  .strictObject({
    model_name: z.string(),
    model_version: z.string(),
    id: z.string().optional().meta({ description: 'The `id` of the request, when it had one' }),
    outputs: z.array(responseOutputSchema),
  })
  .meta({ id: 'InferenceResponse' });

export type InferenceResponse = z.infer<typeof inferenceResponseSchema>;

export const inferenceErrorSchema = z.strictObject({ error: z.string() }).meta({ id: 'InferenceError' });

// Compile-time checks that the service's response types match these schemas in both directions.
export type InferenceProtocolTypeChecks = [
  Fits<InferResponse, InferenceResponse>,
  Fits<InferenceResponse, InferResponse>,
  Fits<ModelMetadataResponse, z.infer<typeof modelMetadataSchema>>,
  Fits<z.infer<typeof modelMetadataSchema>, ModelMetadataResponse>,
];
