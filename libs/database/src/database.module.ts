import { Global, Module } from '@nestjs/common';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { loadConfig } from '@aperture/config/config.js';
import { ormOptions } from './orm-options.js';
import { SchemaService } from './schema.service.js';

@Global()
@Module({
  imports: [
    // The factory reads the validated config itself (no `inject`), so MikroORM does not ask for a fixed driver:
    // the dialect (SQLite or PostgreSQL) is chosen at run time from DATABASE_URL.
    MikroOrmModule.forRootAsync({
      useFactory: () => ({ ...ormOptions(loadConfig()), registerRequestContext: true }),
    }),
  ],
  providers: [SchemaService],
  exports: [SchemaService],
})
export class DatabaseModule {}
