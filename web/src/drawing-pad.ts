// Stroke width as a share of the canvas width: 20 px on the 280 px canvas. After the service scales
// a digit's ink to its 20 x 20 box, a stroke of this width is about as thick as an MNIST stroke.
const STROKE_SHARE = 1 / 14;

/**
 * A canvas that draws the strokes of a mouse, a finger or a pen (pointer events), dark on a
 * transparent background. Its PNG export is a canvas export as any other page would upload.
 */
export class DrawingPad {
  private readonly context: CanvasRenderingContext2D;
  private activePointer: number | null = null;
  private last: { x: number; y: number } | null = null;
  private empty = true;

  constructor(private readonly canvas: HTMLCanvasElement) {
    const context = canvas.getContext('2d');
    if (!context) throw new Error('this browser cannot draw on a canvas, so choose an image file instead');
    this.context = context;
    context.lineCap = 'round';
    context.lineJoin = 'round';
    context.strokeStyle = '#111111';
    context.fillStyle = '#111111';
    context.lineWidth = canvas.width * STROKE_SHARE;

    canvas.addEventListener('pointerdown', (event) => this.startStroke(event));
    canvas.addEventListener('pointermove', (event) => this.continueStroke(event));
    canvas.addEventListener('pointerup', (event) => this.endStroke(event));
    canvas.addEventListener('pointercancel', (event) => this.endStroke(event));
  }

  /** True when nothing has been drawn since the last clear. */
  get isEmpty(): boolean {
    return this.empty;
  }

  clear(): void {
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.empty = true;
  }

  /** Encodes the drawing as a PNG file, as `canvas.toBlob` does for any page. */
  toPng(): Promise<Blob> {
    return encodePng(this.canvas);
  }

  /**
   * Encodes the drawing as a PNG file and clears the pad at once. The drawing is copied before the
   * encoding starts, so a stroke begun while it runs stays on the pad for the next drawing.
   */
  takePng(): Promise<Blob> {
    const copy = document.createElement('canvas');
    copy.width = this.canvas.width;
    copy.height = this.canvas.height;
    copy.getContext('2d')?.drawImage(this.canvas, 0, 0);
    this.clear();
    return encodePng(copy);
  }

  private startStroke(event: PointerEvent): void {
    // One stroke at a time, and only with the primary mouse button.
    if (this.activePointer !== null || (event.pointerType === 'mouse' && event.button !== 0)) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.activePointer = event.pointerId;

    // A tap without movement leaves a dot.
    const point = this.toCanvasPoint(event);
    this.context.beginPath();
    this.context.arc(point.x, point.y, this.context.lineWidth / 2, 0, 2 * Math.PI);
    this.context.fill();
    this.last = point;
    this.empty = false;
  }

  private continueStroke(event: PointerEvent): void {
    if (event.pointerId !== this.activePointer || this.last === null) return;
    // Coalesced events hold the positions between two animation frames, so fast strokes stay smooth.
    const events = typeof event.getCoalescedEvents === 'function' ? event.getCoalescedEvents() : [];
    for (const sample of events.length > 0 ? events : [event]) {
      const point = this.toCanvasPoint(sample);
      this.context.beginPath();
      this.context.moveTo(this.last.x, this.last.y);
      this.context.lineTo(point.x, point.y);
      this.context.stroke();
      this.last = point;
    }
  }

  private endStroke(event: PointerEvent): void {
    if (event.pointerId !== this.activePointer) return;
    this.activePointer = null;
    this.last = null;
  }

  // The canvas is scaled by CSS on narrow screens, so client pixels are mapped to canvas pixels.
  private toCanvasPoint(event: PointerEvent): { x: number; y: number } {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * this.canvas.width) / box.width,
      y: ((event.clientY - box.top) * this.canvas.height) / box.height,
    };
  }
}

function encodePng(canvas: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the drawing could not be encoded as PNG'))), 'image/png');
  });
}
