/**
 * How a reference's path names the file of a transfer. A source's path (placeholders expanded) is
 * the file. A destination's path names either a directory, when it ends with `/` (the file goes in
 * it under the name the export gives it), or the file itself (the export's name is then unused):
 * `exports/` + `customers.csv` → `exports/customers.csv`; `exports/customers_$yyyyMMdd.csv` →
 * `exports/customers_20261207.csv`.
 */
import { randomBytes } from "node:crypto";
import { expandDatePlaceholders } from "../../domain/file-source.js";
import { FileTransferError } from "./file-transfer-error.js";
import type { TransferContext } from "./transfer-context.js";

/** The path with its date placeholders expanded at the transfer's time, in its time zone. */
export function expandedPath(template: string, ctx: Pick<TransferContext, "at" | "timeZone">) {
  try {
    return expandDatePlaceholders(template, ctx.at, ctx.timeZone);
  } catch {
    throw new FileTransferError(
      "INVALID_SOURCE",
      `${template}: the time zone ${ctx.timeZone} is unknown, so its date placeholders cannot be expanded`,
    );
  }
}

export function destinationPath(
  template: string,
  fileName: string,
  ctx: Pick<TransferContext, "at" | "timeZone">,
): string {
  const path = expandedPath(template, ctx);
  return path.endsWith("/") ? `${path}${fileName}` : path;
}

/**
 * The temporary name a put writes under before renaming the file over `finalName`, in the same
 * directory: hidden, unique, and marked as partial (`.<name>.<random>.part`).
 */
export function partFileName(finalName: string): string {
  return `.${finalName}.${randomBytes(6).toString("hex")}.part`;
}

/** A file name for a destination directory: one plain name, no separator, no `..`. */
export function checkedFileName(fileName: string): string {
  // eslint-disable-next-line no-control-regex
  if (fileName === "" || fileName === "." || fileName === ".." || /[/\\\x00-\x1f]/.test(fileName))
    throw new FileTransferError(
      "INVALID_SOURCE",
      `"${fileName}" cannot be a file name: it must be one name without / or \\ or control characters`,
    );
  return fileName;
}
