import { Migration } from '@mikro-orm/migrations';

export class Migration20261129014812_batches extends Migration {

  override name = 'Migration20261129014812_batches';

  override up(): void | Promise<void> {
    this.addSql(`create table "batches" ("id" uuid not null, "owner_id" uuid not null, "kind" varchar(32) not null, "model" varchar(200) not null, "total_images" int not null, "items" jsonb not null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "batches_owner_id_created_at_index" on "batches" ("owner_id", "created_at");`);

    this.addSql(`alter table "jobs" add "model" varchar(200) null;`);
    this.addSql(`create index "jobs_model_index" on "jobs" ("model");`);
    // Jobs queued before the column existed: their model from the params.
    this.addSql(`update "jobs" set "model" = coalesce("params"->>'model', "params"->>'detectionModel');`);

    this.addSql(`alter table "batches" add constraint "batches_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "batches" cascade;`);

    this.addSql(`drop index "jobs_model_index";`);
    this.addSql(`alter table "jobs" drop column "model";`);
  }

}
