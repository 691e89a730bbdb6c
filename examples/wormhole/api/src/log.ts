/**
 * Structured logging: one JSON object per line, the same format in every Wormhole service.
 *
 * Every line starts with `time` (RFC 3339, UTC, milliseconds), `level`, `service`,
 * `tenant_id`, `run_id` and `message` — `null` when the event has no tenant, run or
 * message — then `version` (BUILD_SHA or "dev") and any other fields of the event.
 * The runner writes the same keys (runner/src/runner/logs.py), so one query finds a run
 * across services.
 */

export const SERVICE = "api";
export const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Context of an event: the platform's ids, plus free-form fields. */
export interface LogFields {
  tenant_id?: string | null;
  run_id?: string | null;
  [key: string]: unknown;
}

export interface LogLine {
  time: string;
  level: LogLevel;
  service: string;
  tenant_id: string | null;
  run_id: string | null;
  message: string | null;
  [key: string]: unknown;
}

export interface LoggerOptions {
  /** Where lines go (default: stderr). Receives the line without its newline. */
  write?: (line: string) => void;
  clock?: () => Date;
  version?: string;
  /** Lines below this level are dropped (default INFO). */
  level?: LogLevel;
}

export interface Logger {
  log(level: LogLevel, message: string | null, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warning(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** The line for one event (exported for tests and for other writers). */
export function formatLine(
  level: LogLevel,
  message: string | null,
  fields: LogFields = {},
  time: Date = new Date(),
  version = "dev",
): LogLine {
  const { tenant_id = null, run_id = null, ...rest } = fields;
  // the platform keys first and never overwritten by an event's fields
  for (const key of ["time", "level", "service", "message"]) delete rest[key];
  return {
    time: time.toISOString(),
    level,
    service: SERVICE,
    tenant_id: tenant_id || null,
    run_id: run_id || null,
    message: message || null,
    version,
    ...rest,
  };
}

/** Parse LOG_LEVEL (case-insensitive, default INFO). Throws on an unknown level. */
export function parseLogLevel(value: string | undefined): LogLevel {
  const level = (value ?? "").trim().toUpperCase();
  if (level === "") return "INFO";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return level as LogLevel;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const clock = options.clock ?? (() => new Date());
  const version = options.version ?? "dev";
  const threshold = LOG_LEVELS.indexOf(options.level ?? "INFO");
  const log = (level: LogLevel, message: string | null, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    write(JSON.stringify(formatLine(level, message, fields, clock(), version)));
  };
  return {
    log,
    debug: (message, fields) => log("DEBUG", message, fields),
    info: (message, fields) => log("INFO", message, fields),
    warning: (message, fields) => log("WARNING", message, fields),
    error: (message, fields) => log("ERROR", message, fields),
  };
}

/** A logger that drops everything (the default of the request handler in tests). */
export const silentLogger: Logger = createLogger({ write: () => {} });
