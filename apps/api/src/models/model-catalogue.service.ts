import { Injectable } from '@nestjs/common';
import { badRequest, notFound } from '@aperture/common/problem.js';
import { InjectManifest } from '@aperture/models/manifest.provider.js';
import type { ModelEntry, ModelKind, ModelManifest } from '@aperture/models/manifest.js';
import type { WorkerDoc } from '@aperture/models/model-control.js';
import { manifestModelId } from '@aperture/models/model-ids.js';
import type { EmbeddingCacheStats, ModelStats, PhaseStats } from '@aperture/models/model-status.js';
import { type ModelDetailDto, ModelStatsDto, type ModelStatsResponseDto, type ModelSummaryDto, ModelWorkerStateDto } from './models.dto.js';
import { ModelControlService } from './model-control.service.js';
import { roundTo } from '@aperture/common/round.js';

const PHASES = ['success', 'failure', 'queue', 'preprocess', 'compute', 'postprocess'] as const;

/**
 * The models the API knows: the manifest's entries, their numeric ids, resolution of a model named by id or name
 * (for tasks and projects), and the listings with each model's live state and statistics from the workers.
 */
@Injectable()
export class ModelCatalogueService {
  constructor(
    @InjectManifest() private readonly manifest: ModelManifest,
    private readonly control: ModelControlService,
  ) {}

  /** A model of the manifest by name; 404 when there is none. */
  entry(name: string): ModelEntry {
    const m = this.entryOrNull(name);
    if (!m) throw notFound(`Model ${name} does not exist.`);
    return m;
  }

  entryOrNull(name: string): ModelEntry | null {
    return this.manifest.models.find((x) => x.name === name) ?? null;
  }

  /**
   * A model's numeric id (model-ids.ts): manifest.json's models by position (1 … 999), folder models by name, installed
   * models by their row; none moves when another model is installed or removed.
   */
  idOf(m: ModelEntry): number {
    return m.id ?? manifestModelId(this.manifest.models.indexOf(m));
  }

  /**
   * A model named by `model` or by its alias `model_type` (the older clients' field); naming two different models is a
   * 400. Neither: the first installed model of the kinds.
   */
  resolveAliased(model: string | undefined, modelType: string | undefined, kinds: readonly ModelKind[]): ModelEntry {
    if (model !== undefined && modelType !== undefined && model !== modelType) {
      throw badRequest('model and model_type name different models: send one of them.', {
        errors: [{ field: 'model_type', messages: ['differs from model'] }],
      });
    }
    return this.resolve(model ?? modelType, kinds, model === undefined ? 'model_type' : 'model');
  }
  /**
   * One model named by any of several fields: a canonical field and the older clients' aliases of it (e.g.
   * detection_model and detection_model_id). Each field given must name a model of the kinds; two that name different
   * models are a 400 naming both. None given: `fallback` (a previous value), else the first model of the kinds.
   */
  resolveFields(
    refs: readonly { field: string; ref: string | number | undefined | null }[],
    kinds: readonly ModelKind[],
    opts: { fallback?: string; accept?: (m: ModelEntry) => boolean } = {},
  ): ModelEntry {
    const given = refs.filter((r) => r.ref !== undefined && r.ref !== null && r.ref !== '');
    if (given.length === 0) return this.resolve(opts.fallback, kinds, refs[0]?.field ?? 'model', opts.accept);
    const found = given.map((r) => ({ field: r.field, model: this.resolve(r.ref, kinds, r.field, opts.accept) }));
    const first = found[0]!;
    const other = found.find((f) => f.model !== first.model);
    if (other) {
      throw badRequest(
        `${first.field} and ${other.field} name different models (${first.model.name}, ${other.model.name}): send one of them.`,
        { errors: [{ field: other.field, messages: [`names ${other.model.name}, but ${first.field} names ${first.model.name}`] }] },
      );
    }
    return first.model;
  }

  /**
   * A model chosen by numeric id or by name among the given kinds, or the first model of those kinds when none is
   * named. Anything else is a 400 whose detail lists the valid (id, name, kind) triples.
   */
  resolve(
    ref: string | number | undefined | null,
    kinds: readonly ModelKind[],
    field: string,
    accept: (m: ModelEntry) => boolean = () => true,
  ): ModelEntry {
    const valid = this.manifest.models.filter((m) => kinds.includes(m.kind) && accept(m));
    if (ref === undefined || ref === null || ref === '') {
      const first = valid[0];
      if (!first) throw badRequest(`No ${kinds.join(' or ')} model is installed for ${field}.`);
      return first;
    }
    const key = String(ref).trim();
    const found = /^\d+$/.test(key) ? valid.find((m) => this.idOf(m) === Number(key)) : valid.find((m) => m.name === key);
    if (!found) {
      const triples = valid.map((m) => `(${this.idOf(m)}, '${m.name}', '${m.kind}')`).join(', ');
      throw badRequest(`Model id was not correct. Choose from (id, name, kind) [${triples}].`, {
        errors: [{ field, messages: [`unknown ${kinds.join('/')} model "${key}"`] }],
        valid_models: valid.map((m) => ({ id: this.idOf(m), name: m.name, kind: m.kind })),
      });
    }
    return found;
  }

  async list(kind?: ModelKind): Promise<ModelSummaryDto[]> {
    const docs = await this.control.workers();
    return this.manifest.models.filter((m) => !kind || m.kind === kind).map((m) => this.summary(m, docs));
  }

  async detail(name: string): Promise<ModelDetailDto> {
    const m = this.entry(name);
    return {
      ...this.summary(m, await this.control.workers()),
      files: m.files.map((f) => ({
        role: f.role,
        path: f.path,
        sha256: f.sha256,
        size_bytes: f.size_bytes,
        inputs: f.inputs,
        outputs: f.outputs,
        metadata: f.metadata,
      })),
      preprocess: m.preprocess,
      metrics: m.metrics,
    };
  }

  /** A model's statistics per live worker and summed over them. */
  async stats(name: string): Promise<ModelStatsResponseDto> {
    this.entry(name);
    const docs = await this.control.workers();
    const per = docs.filter((d) => d.models[name]).map((d) => ({ worker_id: d.worker_id, stats: d.models[name]!.stats }));
    const total = per.reduce<ModelStats>(
      (acc, { stats }) => {
        acc.inference_count += stats.inference_count;
        for (const p of PHASES) {
          acc[p].count += stats[p].count;
          acc[p].total_ms += stats[p].total_ms;
        }
        if (stats.last_inference_at && (!acc.last_inference_at || stats.last_inference_at > acc.last_inference_at)) {
          acc.last_inference_at = stats.last_inference_at;
        }
        if (stats.embedding_cache) acc.embedding_cache = addCacheStats(acc.embedding_cache, stats.embedding_cache);
        return acc;
      },
      {
        inference_count: 0,
        success: zero(),
        failure: zero(),
        queue: zero(),
        preprocess: zero(),
        compute: zero(),
        postprocess: zero(),
        last_inference_at: null,
      },
    );
    return {
      name,
      total: ModelStatsDto.from(total),
      workers: per.map((w) => ({ worker_id: w.worker_id, stats: ModelStatsDto.from(w.stats) })),
    };
  }

  private summary(m: ModelEntry, docs: WorkerDoc[]): ModelSummaryDto {
    const workers = docs.filter((d) => d.models[m.name]).map((d) => ModelWorkerStateDto.from(d, d.models[m.name]));
    const states = workers.map((w) => w.state);
    const state = states.includes('failed')
      ? 'failed'
      : states.includes('loading')
        ? 'loading'
        : states.length > 0 && states.every((s) => s === 'loaded')
          ? 'loaded'
          : 'available';
    return {
      id: this.idOf(m),
      name: m.name,
      kind: m.kind,
      task: m.task,
      contract: m.contract,
      version: m.version,
      description: m.description,
      size_mb: m.size_mb,
      labels: m.labels,
      input_size: m.input_size,
      state,
      memory_mb: roundTo(
        workers.reduce((a, w) => a + w.memory_mb, 0),
        3,
      ),
      workers,
      source: m.source ?? 'shipped',
      file_digests: m.files.map((f) => ({ role: f.role, sha256: f.sha256, size_bytes: f.size_bytes })),
    };
  }
}

const zero = (): PhaseStats => ({ count: 0, total_ms: 0 });

/** Two workers' embedding caches together (each worker has its own cache: entries and bytes add up too). */
const addCacheStats = (a: EmbeddingCacheStats | undefined, b: EmbeddingCacheStats): EmbeddingCacheStats => ({
  hits: (a?.hits ?? 0) + b.hits,
  misses: (a?.misses ?? 0) + b.misses,
  evictions: (a?.evictions ?? 0) + b.evictions,
  entries: (a?.entries ?? 0) + b.entries,
  bytes: (a?.bytes ?? 0) + b.bytes,
});
