//! The benchmarks every grid point is judged by: ARC (easy, challenge),
//! HellaSwag and PIQA by log-likelihood, GSM8K and IFEval by greedy
//! generation, each faithful to lm-evaluation-harness (and, for IFEval, to
//! Google's reference checker).

pub mod ifeval;
