/** The file cannot be read to its end; the message says why, for the person who sent it. */
export class ImportFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImportFileError";
  }
}
