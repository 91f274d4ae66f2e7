# The example programs end to end on tiny runs, and their bad-input paths:
# unknown flags (usage, exit 2), a missing dataset, a truncated checkpoint, a
# NaN loss (exit 1, checkpoint unchanged), resuming, sampling, scoring.
# Run by ctest: cmake -DBIN=<examples dir> -DWORK=<scratch dir> -P cli_checks.cmake
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(ckpt ${WORK}/model.safetensors)
set(tiny_run --limit 64 --batch 8 --warmup 0 --checkpoint ${ckpt} --log ${WORK}/train.csv --loss-png ${WORK}/loss.png)

# expect(<exit code> <text the output must contain> COMMAND ...)
function(expect code text)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(JOIN " " shown ${ARGN})
  if(NOT rc STREQUAL "${code}")
    message(FATAL_ERROR "${shown}\nexited with ${rc}, expected ${code}\n${out}${err}")
  endif()
  string(FIND "${out}${err}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${shown}\ndid not print '${text}':\n${out}${err}")
  endif()
  message(STATUS "ok (exit ${rc}): ${shown}")
endfunction()

expect(2 "--bogus" ${BIN}/haze-train-fmnist --bogus)
expect(2 "Usage" ${BIN}/haze-sample --steps)
expect(2 "--nope" ${BIN}/haze-eval --nope)
expect(0 "Usage" ${BIN}/haze-train-classifier --help)
expect(1 "/no/such/folder/train-images-idx3-ubyte" ${BIN}/haze-train-fmnist --data /no/such/folder ${tiny_run} --steps 1)
expect(1 "unknown prediction type 'noise'" ${BIN}/haze-train-fmnist ${tiny_run} --steps 1 --prediction noise)

# Train two steps, resume for a third, sample from it.
expect(0 "finished at step 2" ${BIN}/haze-train-fmnist ${tiny_run} --steps 2)
expect(0 "resumed from ${ckpt} at step 2" ${BIN}/haze-train-fmnist ${tiny_run} --steps 3 --resume)
expect(0 "wrote ${WORK}/grid.png" ${BIN}/haze-sample --checkpoint ${ckpt} --n 4 --steps 2 --sampler ddim
       --out ${WORK}/grid.png --samples ${WORK}/samples.safetensors)
expect(0 "wrote ${WORK}/device.png" ${BIN}/haze-sample --checkpoint ${ckpt} --n 2 --steps 2 --backend device
       --out ${WORK}/device.png)
expect(1 "unknown backend 'tpu'" ${BIN}/haze-sample --checkpoint ${ckpt} --n 2 --backend tpu --out ${WORK}/x.png)
expect(1 "unknown sampler 'fast'" ${BIN}/haze-sample --checkpoint ${ckpt} --n 2 --sampler fast --out ${WORK}/x.png)

# A NaN loss (a learning rate that blows the weights up) stops the run with
# its step and leaves the checkpoint as it was.
file(SHA256 ${ckpt} before)
expect(1 "the loss is" ${BIN}/haze-train-fmnist ${tiny_run} --steps 50 --resume --lr 1e30 --clip 0 --checkpoint-every 0)
file(SHA256 ${ckpt} after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "the checkpoint changed after a NaN run")
endif()

# Ctrl-C: the step in flight finishes, the checkpoint is saved, exit 0.
expect(0 "interrupted at step" timeout --preserve-status -s INT 5 ${BIN}/haze-train-fmnist --limit 64 --batch 8
       --steps 1000000 --checkpoint ${WORK}/interrupted.safetensors --log ${WORK}/interrupted.csv
       --loss-png ${WORK}/interrupted.png --checkpoint-every 0)
expect(0 "wrote ${WORK}/after_interrupt.png" ${BIN}/haze-sample --checkpoint ${WORK}/interrupted.safetensors --n 2
       --steps 2 --out ${WORK}/after_interrupt.png)

# A truncated checkpoint is refused by name.
file(SIZE ${ckpt} size)
math(EXPR half "${size} / 2")
execute_process(COMMAND head -c ${half} ${ckpt} OUTPUT_FILE ${WORK}/cut.safetensors COMMAND_ERROR_IS_FATAL ANY)
expect(1 "cut.safetensors" ${BIN}/haze-sample --checkpoint ${WORK}/cut.safetensors --n 2 --out ${WORK}/y.png)

# Score the samples with a classifier trained for a moment.
expect(0 "test accuracy" ${BIN}/haze-train-classifier --limit 256 --epochs 1 --batch 32 --out ${WORK}/classifier.safetensors)
expect(0 "samples classified as their class" ${BIN}/haze-eval --samples ${WORK}/samples.safetensors
       --classifier ${WORK}/classifier.safetensors --out ${WORK}/scores.json)
expect(1 "no tensor 'samples'" ${BIN}/haze-eval --samples ${ckpt} --classifier ${WORK}/classifier.safetensors
       --out ${WORK}/scores.json)
