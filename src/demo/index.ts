/**
 * The demo and the experiments, as the CLI runs them: `runDemo` (the whole pipeline on one machine) and the FedAvg
 * versus FedSGD experiment of McMahan et al. 2017.
 */
export { runDemo, planDemo, summaryLine, hasPreviousRun, clearOutputs, DEFAULT_DEMO_PIPELINE, DEMO_OUTPUTS, type DemoOptions, type DemoPlan } from './demo.ts';
export { runFedAvgVsFedSgd, runLearningRateGrid, experimentMarkdown, experimentTable, gridTable } from './experiment.ts';
export { runRobustness, robustnessManifest, ROBUSTNESS_STRATEGIES, type RobustnessOptions, type RobustnessResult, type RobustnessRun } from './experiment-robustness.ts';
export { attackTable, parseRobustnessResult, robustnessChart, robustnessMarkdown, robustnessTable, replaceSection, timeTable, ATTACK_TITLES, ROBUSTNESS_BEGIN, ROBUSTNESS_END } from './robustness-report.ts';
