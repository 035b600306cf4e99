/**
 * AdamW lives with the gradients in `encoder/optimizer.ts` (retrievers step it inside `train()`);
 * re-exported here for RCL code that configures it.
 */
export * from '../encoder/optimizer.ts';
