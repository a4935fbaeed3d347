import { randomUUID } from 'node:crypto';
import { Collection, type Opt } from '@mikro-orm/core';
import { Entity, Index, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import type { JobType } from '@aperture/queue/job-registry.js';
import { Image } from './image.entity.js';
import { Project } from './project.entity.js';
import { User } from './user.entity.js';

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const FINAL_JOB_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

/** The one record of queued work. The Bull job carries only this record's id. */
@Entity({ tableName: 'jobs' })
@Index({ properties: ['owner', 'createdAt'] })
export class Job {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @Index()
  @Property({ type: 'string', length: 64 })
  type!: JobType;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'cascade' })
  owner: User | null = null;

  @Index()
  @Property({ type: 'string', length: 16 })
  status: JobStatus & Opt = 'queued';

  /** 0..1 */
  @Property({ type: 'double' })
  progress: number & Opt = 0;

  @Property({ type: 'json' })
  params: JsonObject & Opt = {};

  /** The uploaded image the job works on, if any. Set to null when the image is deleted (finished results stay). */
  @ManyToOne(() => Image, { nullable: true, deleteRule: 'set null' })
  image: Image | null = null;

  /** The project whose image this job processes (project result sets); deleted with the project. */
  @ManyToOne(() => Project, { nullable: true, deleteRule: 'cascade' })
  project: Project | null = null;

  /** The model the job runs (its main one: the detector of a prediction task); null for jobs without a model. */
  @Index()
  @Property({ type: 'string', length: 200, nullable: true })
  model: string | null = null;

  /** Jobs started together (a project's start / start-rest, a segmentation batch) share a batch id. */
  @Index()
  @Property({ type: 'uuid', nullable: true })
  batchId: string | null = null;

  @Property({ type: 'json', nullable: true })
  result: (JsonObject & Opt) | null = null;

  @Property({ type: 'text', nullable: true })
  error: string | null = null;

  @Property({ type: 'integer' })
  attempts: number & Opt = 0;

  @Property({ type: 'integer' })
  maxAttempts: number & Opt = 1;

  /** Who holds the current attempt (a worker process, later an external worker leasing over HTTP); null unless running. */
  @Property({ type: 'string', length: 200, nullable: true })
  leaseOwner: string | null = null;

  /** When the current attempt's lease runs out unless renewed; past it, another claimer may take the job over. */
  @Property({ type: 'datetime', nullable: true })
  leaseExpiresAt: Date | null = null;

  /** Bytes of the upload the job keeps under its inputs (`inputs/{id}/…`), counted in its owner's storage quota; 0 for none. */
  @Property({ type: 'bigint', runtimeType: 'number', default: 0 })
  inputBytes: number & Opt = 0;

  @OneToMany(() => JobArtifact, (a) => a.job, { orphanRemoval: true })
  artifacts = new Collection<JobArtifact>(this);

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();

  @Property({ type: 'datetime' })
  queuedAt: Date & Opt = new Date();

  @Property({ type: 'datetime', nullable: true })
  startedAt: Date | null = null;

  @Property({ type: 'datetime', nullable: true })
  finishedAt: Date | null = null;

  @Property({ type: 'datetime', onUpdate: () => new Date() })
  updatedAt: Date & Opt = new Date();
}

/** A file a job produced, kept in storage under a generated key. */
@Entity({ tableName: 'job_artifacts' })
export class JobArtifact {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Job, { deleteRule: 'cascade' })
  job!: Job;

  /** File name shown to users (e.g. qr.pdf); never used as a storage path. */
  @Property({ type: 'string', length: 200 })
  name!: string;

  @Property({ type: 'string', length: 300 })
  storageKey!: string;

  @Property({ type: 'string', length: 100 })
  contentType!: string;

  @Property({ type: 'bigint', runtimeType: 'number' })
  sizeBytes!: number;

  /** The attempt of the job that wrote it (its file lies under jobs/{job}/attempt-{n}/). */
  @Property({ type: 'integer', default: 1 })
  attempt: number & Opt = 1;

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();
}
