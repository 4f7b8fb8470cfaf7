/** One drawing or file in the order being collected, sent `copies` times. */
export interface BasketEntry {
  id: number;
  name: string;
  image: Blob;
  copies: number;
  /** A blob: URL of the image for its thumbnail, revoked when the entry is removed. */
  previewUrl: string;
}

/** The drawings and files collected for the next order. */
export class Basket {
  private entries: BasketEntry[] = [];
  private nextId = 1;

  get itemCount(): number {
    return this.entries.reduce((count, entry) => count + entry.copies, 0);
  }

  list(): readonly BasketEntry[] {
    return this.entries;
  }

  add(name: string, image: Blob, copies: number): void {
    this.entries.push({ id: this.nextId++, name, image, copies, previewUrl: URL.createObjectURL(image) });
  }

  remove(id: number): void {
    const entry = this.entries.find((candidate) => candidate.id === id);
    if (!entry) return;
    URL.revokeObjectURL(entry.previewUrl);
    this.entries = this.entries.filter((candidate) => candidate !== entry);
  }

  clear(): void {
    for (const entry of this.entries) URL.revokeObjectURL(entry.previewUrl);
    this.entries = [];
  }

  /**
   * Builds the multipart body of POST /orders: one file part for every copy, in basket order, as a
   * person choosing the same files would send them, and the note when there is one.
   */
  toFormData(note: string): FormData {
    const form = new FormData();
    for (const entry of this.entries) {
      for (let copy = 0; copy < entry.copies; copy++) form.append('files', entry.image, entry.name);
    }
    if (note !== '') form.append('note', note);
    return form;
  }
}
