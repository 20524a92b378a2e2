/** A named tensor in memory: float32 values in row-major order. */
export interface NamedTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** A model's weights, in the order of the model's layers. */
export type Weights = NamedTensor[];
