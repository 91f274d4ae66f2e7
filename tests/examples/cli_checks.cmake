# The example programs end to end on tiny runs, and their bad-input paths:
# bad flags and values (usage, exit 2), unwritable outputs, malformed data, a
# missing dataset, a truncated checkpoint, a NaN loss (exit 1, checkpoint
# unchanged), resuming, sampling, scoring.
# Run by ctest: cmake -DBIN=<examples dir> -DWORK=<scratch dir> -P cli_checks.cmake
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(ckpt ${WORK}/model.safetensors)
# (unbatched: for the runs that give --global-batch instead)
set(unbatched_flags --limit 64 --warmup 0 --log ${WORK}/train.csv --loss-png ${WORK}/loss.png)
set(tiny_flags ${unbatched_flags} --batch 8)
set(tiny_run ${tiny_flags} --checkpoint ${ckpt})

# expect(<exit code> <text the output must contain> COMMAND ...), run in
# ${WORK} so that default output paths (out/...) land there.
function(expect code text)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
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

expect(2 "haze-train-fmnist: error: The following argument was not expected: --bogus" ${BIN}/haze-train-fmnist --bogus)
expect(2 "Usage" ${BIN}/haze-sample --steps)
expect(2 "--nope" ${BIN}/haze-eval --nope)
expect(0 "Usage" ${BIN}/haze-train-classifier --help)
expect(1 "/no/such/folder/train-images-idx3-ubyte" ${BIN}/haze-train-fmnist --data /no/such/folder ${tiny_run} --steps 1)

# A value out of its flag's range (NaN never is in one) or an unknown name is
# refused while parsing (exit 2), before any work.
foreach(case "haze-train-fmnist --steps -5;--steps: must be >= 1, got -5"
             "haze-train-fmnist --batch -3;--batch: must be >= 1, got -3"
             "haze-train-fmnist --batch 0;--batch: must be >= 1, got 0"
             "haze-train-fmnist --lr -1;--lr: must be > 0, got -1"
             "haze-train-fmnist --lr nan;--lr: must be > 0, got nan"
             "haze-train-fmnist --label-dropout 2;--label-dropout: must be in [0, 1], got 2"
             "haze-train-fmnist --timesteps 0;--timesteps: must be in [1, 1048576], got 0"
             "haze-train-fmnist --seed -1;--seed: must be >= 0, got -1"
             "haze-train-fmnist --prediction noise;--prediction: unknown prediction type 'noise' (known: epsilon, sample, velocity)"
             "haze-train-fmnist --schedule bogus;--schedule: schedule: unknown kind 'bogus' (known: linear, scaled_linear, cosine, sigmoid, sigmoid_beta)"
             "haze-train-fmnist --decay bogus;--decay: LrSchedule: unknown decay 'bogus' (known: constant, cosine)"
             "haze-train-fmnist --preset huge;--preset: unknown preset 'huge' (known: demo, full)"
             "haze-train-fmnist --rank-timeout 0;--rank-timeout: must be in [1, 604800], got 0"
             "haze-train-fmnist --global-batch 16 --batch 8;--batch excludes --global-batch"
             "haze-sample --n 0;--n: must be >= 1, got 0"
             "haze-sample --guidance nan;--guidance: must be >= 0, got nan"
             "haze-sample --sampler fast;--sampler: unknown sampler 'fast' (known: ddpm, ddim, euler, euler_a, heun, dpmpp2m, sde)"
             "haze-sample --backend tpu;--backend: unknown backend 'tpu' (known: cpu, device)"
             "haze-train-classifier --epochs 0;--epochs: must be >= 1, got 0"
             "haze-train-classifier --lr inf;--lr: must be > 0, got inf"
             "haze-toy2d --seconds nan;--seconds: must be > 0, got nan"
             "haze-toy2d --samples 0;--samples: must be >= 1, got 0"
             "haze-toy2d --sampler bogus;--sampler: unknown sampler 'bogus' (known: ddpm, ddim, euler, euler_a, heun, dpmpp2m, sde)"
             "haze-toy2d --data bogus;--data: unknown toy dataset 'bogus' (known: moons, gaussians, swissroll)")
  list(GET case 0 command)
  list(GET case 1 text)
  separate_arguments(command)
  list(GET command 0 program)
  list(POP_FRONT command)
  expect(2 "${program}: error: ${text}" ${BIN}/${program} ${command})
endforeach()
# Flags that clash fail before the data loads (else the missing folder would be named).
expect(1 "haze-train-fmnist: error: haze: LrSchedule: cosine decay needs total_steps (1) > warmup_steps (100)"
       ${BIN}/haze-train-fmnist --data /no/such/folder --steps 1)

# Every output path is checked before the work starts (here before the
# checkpoint, the samples or the data are even read).
foreach(case "haze-train-fmnist --checkpoint" "haze-train-fmnist --log" "haze-train-fmnist --loss-png" "haze-sample --out"
             "haze-sample --samples" "haze-train-classifier --out" "haze-eval --out" "haze-toy2d --out")
  separate_arguments(case)
  list(GET case 0 program)
  list(GET case 1 flag)
  expect(1 "${program}: error: haze: ${flag} /proc/nope/file: cannot create the folder /proc/nope: No such file or directory"
         ${BIN}/${program} ${flag} /proc/nope/file)
endforeach()
expect(1 "haze-toy2d: error: haze: --out /proc/toy.png: cannot write in the folder /proc: No such file or directory"
       ${BIN}/haze-toy2d --out /proc/toy.png)
expect(1 "haze-toy2d: error: haze: --out ${WORK}: is a folder" ${BIN}/haze-toy2d --out ${WORK})

# A std::exception that is no haze::Error is reported the same way (here a
# folder that is a symbolic link to itself).
file(CREATE_LINK loop ${WORK}/loop SYMBOLIC)
expect(1 "haze-train-classifier: error: filesystem error: status: Too many levels of symbolic links [${WORK}/loop/train-images-idx3-ubyte.gz]"
       ${BIN}/haze-train-classifier --data ${WORK}/loop --out ${WORK}/c.safetensors)

# Malformed IDX files are refused with the shapes they hold.
# write_idx(<file> <magic: 2049 labels, 2051 images> <dims>...): the header
# (big-endian 32-bit numbers) and prod(dims) zero bytes.
function(write_idx file magic)
  set(header "")
  set(size 1)
  foreach(n ${magic} ${ARGN})
    foreach(shift 24 16 8 0)
      math(EXPR byte "(${n} >> ${shift}) & 255" OUTPUT_FORMAT HEXADECIMAL)
      string(REPLACE "0x" "\\x" byte ${byte})
      string(APPEND header ${byte})
    endforeach()
  endforeach()
  foreach(n ${ARGN})
    math(EXPR size "${size} * ${n}")
  endforeach()
  cmake_path(GET file PARENT_PATH folder)
  file(MAKE_DIRECTORY ${folder})
  execute_process(COMMAND sh -c "/usr/bin/printf '${header}' > '${file}' && head -c ${size} /dev/zero >> '${file}'"
                  COMMAND_ERROR_IS_FATAL ANY)
endfunction()
write_idx(${WORK}/narrow/train-images-idx3-ubyte 2051 2 28 27)
write_idx(${WORK}/narrow/train-labels-idx1-ubyte 2049 2)
expect(1 "haze-train-classifier: error: haze: ${WORK}/narrow/train-images-idx3-ubyte: expected images [N, 28, 28], got [2, 28, 27]"
       ${BIN}/haze-train-classifier --data ${WORK}/narrow --out ${WORK}/c.safetensors)
write_idx(${WORK}/extra_label/train-images-idx3-ubyte 2051 2 28 28)
write_idx(${WORK}/extra_label/train-labels-idx1-ubyte 2049 3)
expect(1 "haze-train-classifier: error: haze: ${WORK}/extra_label/train-labels-idx1-ubyte: expected labels [2], one per image in ${WORK}/extra_label/train-images-idx3-ubyte, got [3]"
       ${BIN}/haze-train-classifier --data ${WORK}/extra_label --out ${WORK}/c.safetensors)

# Train two steps, resume for a third, sample from it.
expect(0 "finished at step 2" ${BIN}/haze-train-fmnist ${tiny_run} --steps 2)
expect(0 "resumed from ${ckpt} at step 2" ${BIN}/haze-train-fmnist ${tiny_run} --steps 3 --resume)
expect(0 "wrote ${WORK}/grid.png" ${BIN}/haze-sample --checkpoint ${ckpt} --n 4 --steps 2 --sampler ddim
       --out ${WORK}/grid.png --samples ${WORK}/samples.safetensors)
# Without CUDA the device backend is Thrust's OpenMP system, and says so.
expect(0 "haze-sample: note: --backend device runs Thrust's OpenMP system on the CPU in this build (a test vehicle, slower than --backend cpu); build the .cu programs with nvcc for a GPU"
       ${BIN}/haze-sample --checkpoint ${ckpt} --n 2 --steps 2 --backend device --out ${WORK}/device.png)

# diffusers both ways: the checkpoint exported as a pipeline folder samples
# from that folder; a folder that diffusers itself wrote samples at its own
# size and channels; an option haze cannot reproduce is refused by name.
expect(1 "haze-export-diffusers: error: haze: say which weights to export: --ema or --raw-weights"
       ${BIN}/haze-export-diffusers ${ckpt} ${WORK}/exported)
expect(2 "--ema excludes --raw-weights" ${BIN}/haze-export-diffusers ${ckpt} ${WORK}/exported --ema --raw-weights)
expect(0 "wrote ${WORK}/exported (EMA weights of ${ckpt}, step 3" ${BIN}/haze-export-diffusers ${ckpt} ${WORK}/exported --ema)
expect(0 "wrote ${WORK}/exported.png (4 samples, ddpm, 3 steps" ${BIN}/haze-sample --diffusers ${WORK}/exported --n 4
       --steps 3 --out ${WORK}/exported.png)
expect(0 "class 10 baked in" ${BIN}/haze-export-diffusers ${ckpt} ${WORK}/unconditional --ema --class null)
expect(0 "wrote ${WORK}/unconditional.png (2 samples" ${BIN}/haze-sample --diffusers ${WORK}/unconditional --n 2
       --steps 2 --out ${WORK}/unconditional.png)
expect(1 "--class 'seven' is neither a class number nor null" ${BIN}/haze-export-diffusers ${ckpt} ${WORK}/x --ema
       --class seven)
expect(0 "wrote ${WORK}/cifar.png (2 samples, ddpm, 2 steps" ${BIN}/haze-sample
       --diffusers ${GOLDEN}/diffusers/ddpm_cifar10_narrow --n 2 --steps 2 --out ${WORK}/cifar.png)
expect(1 "config.json: in_channels 2 and out_channels 1 differ" ${BIN}/haze-sample
       --diffusers ${GOLDEN}/diffusers/class_conditional_bf16 --n 2 --out ${WORK}/z.png)
file(MAKE_DIRECTORY ${WORK}/learned)
file(READ ${GOLDEN}/diffusers/ddpm_cifar10_narrow/config.json config)
string(REPLACE [=["positional"]=] [=["learned"]=] config "${config}")
file(WRITE ${WORK}/learned/config.json "${config}")
file(COPY ${GOLDEN}/diffusers/ddpm_cifar10_narrow/diffusion_pytorch_model.safetensors
     ${GOLDEN}/diffusers/ddpm_cifar10_narrow/scheduler_config.json DESTINATION ${WORK}/learned)
expect(1 "learned/config.json: option 'time_embedding_type' = \"learned\" is not supported by haze" ${BIN}/haze-sample
       --diffusers ${WORK}/learned --n 2 --out ${WORK}/z.png)
# A score-SDE model (Fourier time projection) loads, but haze's samplers are not its sampler.
file(COPY ${GOLDEN}/diffusers/fourier_timestep_class/ DESTINATION ${WORK}/fourier)
file(COPY ${GOLDEN}/diffusers/ddpm_cifar10_narrow/scheduler_config.json DESTINATION ${WORK}/fourier)
expect(1 "fourier/config.json: time_embedding_type fourier is a score-SDE model" ${BIN}/haze-sample
       --diffusers ${WORK}/fourier --n 2 --size 8 --out ${WORK}/z.png)
expect(2 "--checkpoint excludes --diffusers" ${BIN}/haze-sample --diffusers ${WORK}/exported --checkpoint ${ckpt})
expect(1 "haze-sample: error: haze: --size: only a diffusers folder" ${BIN}/haze-sample --checkpoint ${ckpt} --size 8
       --out ${WORK}/z.png)
expect(1 "diffusers: '${WORK}/nowhere' is not a folder" ${BIN}/haze-sample --diffusers ${WORK}/nowhere --out ${WORK}/z.png)
execute_process(COMMAND ${BIN}/haze-unet-forward --help RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "haze-unet-forward --help exited with ${rc}")
endif()

# A NaN loss (a learning rate that blows the weights up) stops the run with
# its step and leaves the checkpoint as it was.
file(SHA256 ${ckpt} before)
expect(1 "haze-train-fmnist: error: haze: Trainer: the loss is" ${BIN}/haze-train-fmnist ${tiny_run} --steps 50 --resume --lr 1e30 --clip 0 --checkpoint-every 0)
file(SHA256 ${ckpt} after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "the checkpoint changed after a NaN run")
endif()

# An update that would overflow (learning rate 1e38: AdamW's first step size
# is lr / 0.1, past float's range) is refused before it is written, so the
# file at --checkpoint keeps its contents even with a save after every step.
file(COPY_FILE ${ckpt} ${WORK}/poison.safetensors)
file(SHA256 ${WORK}/poison.safetensors before)
expect(1 "haze-train-fmnist: error: haze: AdamW::step: step 1 at learning rate" ${BIN}/haze-train-fmnist ${tiny_flags}
       --steps 3 --lr 1e38 --clip 0 --checkpoint-every 1 --checkpoint ${WORK}/poison.safetensors)
file(SHA256 ${WORK}/poison.safetensors after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "the checkpoint changed after a refused update")
endif()

# Crafted metadata is checked against the file's tensors before a model is
# built (these aborted with std::bad_alloc before); each error names the file.
set(model_text [=[{"kind":"unet","in_channels":1,"out_channels":1,"block_out_channels":[16,32,64],"layers_per_block":1,"attention_levels":[2],"attention_head_dim":16,"norm_groups":8,"norm_eps":1e-05,"dropout":0.0,"num_classes":10}]=])
function(crafted name key value)  # writes ${WORK}/<name>.safetensors: ${ckpt} with one metadata value replaced
  execute_process(COMMAND ${BIN}/set_metadata ${ckpt} ${WORK}/${name}.safetensors ${key} ${value}
                  COMMAND_ERROR_IS_FATAL ANY)
endfunction()
string(REPLACE [=["num_classes":10]=] [=["num_classes":1000000000000]=] text "${model_text}")
crafted(classes haze.model "${text}")
expect(1 "haze-sample: error: haze: ${WORK}/classes.safetensors: haze.model: num_classes must be in [0, 16777216], got 1000000000000"
       ${BIN}/haze-sample --checkpoint ${WORK}/classes.safetensors --n 2 --out ${WORK}/z.png)
expect(1 "haze-train-fmnist: error: haze: ${WORK}/classes.safetensors: haze.model: num_classes must be in"
       ${BIN}/haze-train-fmnist ${tiny_flags} --resume --checkpoint ${WORK}/classes.safetensors --steps 9)
string(REPLACE [=[[16,32,64]]=] [=[[1048576,1048576,1048576]]=] text "${model_text}")
crafted(channels haze.model "${text}")
expect(1 "channels.safetensors: haze.model needs a dimension of 1048576 but no tensor in the file has one that large"
       ${BIN}/haze-sample --checkpoint ${WORK}/channels.safetensors --n 2 --out ${WORK}/z.png)
string(REPLACE [=["layers_per_block":1]=] [=["layers_per_block":1000000000]=] text "${model_text}")
crafted(layers haze.model "${text}")
expect(1 "layers.safetensors: haze.model has layers_per_block 1000000000 but the file holds only"
       ${BIN}/haze-train-fmnist ${tiny_flags} --resume --checkpoint ${WORK}/layers.safetensors --steps 9)
string(REPLACE [=["attention_head_dim":16]=] [=["attention_head_dim":24]=] text "${model_text}")
crafted(heads haze.model "${text}")
expect(1 "heads.safetensors: haze.model: attention_head_dim 24 does not divide the 64 channels of an attention level"
       ${BIN}/haze-sample --checkpoint ${WORK}/heads.safetensors --n 2 --out ${WORK}/z.png)
crafted(steps haze.schedule.json [=[{"kind":"linear","steps":2147483647,"parameters":[],"zero_terminal_snr":false}]=])
expect(1 "steps.safetensors: haze.schedule.json: schedule linear: steps must be in [1, 1048576], got 2147483647"
       ${BIN}/haze-sample --checkpoint ${WORK}/steps.safetensors --n 2 --out ${WORK}/z.png)
crafted(prediction haze.prediction noise)
expect(1 "prediction.safetensors: haze.prediction 'noise' is not a known prediction type"
       ${BIN}/haze-sample --checkpoint ${WORK}/prediction.safetensors --n 2 --out ${WORK}/z.png)
crafted(position haze.data.position 100000)
expect(1 "position.safetensors: BatchOrder::seek: epoch "
       ${BIN}/haze-train-fmnist ${tiny_flags} --resume --checkpoint ${WORK}/position.safetensors --steps 9)

# A named pipe as the checkpoint is refused at once instead of blocking.
execute_process(COMMAND mkfifo ${WORK}/pipe.safetensors COMMAND_ERROR_IS_FATAL ANY)
expect(1 "pipe.safetensors' is not a regular file (a FIFO)" timeout 20 ${BIN}/haze-sample
       --checkpoint ${WORK}/pipe.safetensors --n 2 --out ${WORK}/z.png)

# A stale temporary of a killed save is removed by the next save.
file(WRITE ${WORK}/model.safetensors.tmp-999999999-0 "torn")
expect(0 "resumed from" ${BIN}/haze-train-fmnist ${tiny_run} --steps 4 --resume)
if(EXISTS ${WORK}/model.safetensors.tmp-999999999-0)
  message(FATAL_ERROR "the stale temporary of a dead writer was not removed")
endif()

# --global-batch must split evenly into ranks x micro-batches.
expect(1 "--global-batch 15 does not divide into 1 ranks x 2 micro-batches (choose a multiple of 2)"
       ${BIN}/haze-train-fmnist --limit 64 --warmup 0 --global-batch 15 --accumulation 2 --steps 1)

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

# Data-parallel under mpirun (a build with HAZE_MPI): 2 ranks of batch 8
# write the very bytes of 1 rank with batch 8 and accumulation 2, and each
# checkpoint resumes on the other rank count to the same bytes again.
if(MPIEXEC)
  set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)  # (CI runs as root)
  set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
  set(ENV{OMPI_MCA_rmaps_base_oversubscribe} 1)
  set(ENV{OMP_NUM_THREADS} 1)
  set(parallel_flags ${tiny_flags} --checkpoint-every 0)
  expect(0 "batch 8 x 1 x 2 ranks" ${MPIEXEC} -np 2 ${BIN}/haze-train-fmnist ${parallel_flags} --steps 3
         --checkpoint ${WORK}/two_ranks.safetensors)
  expect(0 "batch 8 x 2 x 1 ranks" ${BIN}/haze-train-fmnist ${parallel_flags} --steps 3 --accumulation 2
         --checkpoint ${WORK}/one_rank.safetensors)
  file(SHA256 ${WORK}/two_ranks.safetensors two)
  file(SHA256 ${WORK}/one_rank.safetensors one)
  if(NOT two STREQUAL one)
    message(FATAL_ERROR "2 ranks and 1 rank with accumulation 2 wrote different checkpoints")
  endif()
  # The same --global-batch trains on the same items on any rank count.
  expect(0 "batch 8 x 1 x 2 ranks = 16" ${MPIEXEC} -np 2 ${BIN}/haze-train-fmnist ${unbatched_flags}
         --checkpoint-every 0 --steps 3
         --global-batch 16 --checkpoint ${WORK}/global_batch.safetensors)
  file(SHA256 ${WORK}/global_batch.safetensors global)
  if(NOT global STREQUAL one)
    message(FATAL_ERROR "--global-batch 16 on 2 ranks and --batch 8 --accumulation 2 on 1 wrote different checkpoints")
  endif()
  expect(0 "resumed from ${WORK}/two_ranks.safetensors at step 3" ${BIN}/haze-train-fmnist ${parallel_flags}
         --steps 5 --accumulation 2 --resume --checkpoint ${WORK}/two_ranks.safetensors)
  expect(0 "resumed from ${WORK}/one_rank.safetensors at step 3" ${MPIEXEC} -np 2 ${BIN}/haze-train-fmnist
         ${parallel_flags} --steps 5 --resume --checkpoint ${WORK}/one_rank.safetensors)
  file(SHA256 ${WORK}/two_ranks.safetensors two)
  file(SHA256 ${WORK}/one_rank.safetensors one)
  if(NOT two STREQUAL one)
    message(FATAL_ERROR "the resumed runs on 1 and 2 ranks wrote different checkpoints")
  endif()
  # Ctrl-C on mpirun reaches every rank: they finish the step, agree to stop,
  # and rank 0 saves a checkpoint that resumes.
  # (mpirun forwards it as SIGTERM and kills the ranks 1 s later: the step
  # and the save must fit in that second; docs/distributed.md.)
  file(REMOVE ${WORK}/mpi_interrupted.csv)
  execute_process(COMMAND ${CMAKE_CURRENT_LIST_DIR}/interrupt_group.sh ${WORK}/mpi_interrupted.csv
                          ${MPIEXEC} -np 2 ${BIN}/haze-train-fmnist --limit 64 --batch 8 --warmup 0
                          --steps 1000000 --checkpoint-every 0 --checkpoint ${WORK}/mpi_interrupted.safetensors
                          --log ${WORK}/mpi_interrupted.csv --loss-png ${WORK}/mpi_interrupted.png
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT "${out}${err}" MATCHES "interrupted at step")
    message(FATAL_ERROR "Ctrl-C on mpirun: exit ${rc}, no 'interrupted at step'\n${out}${err}")
  endif()
  message(STATUS "ok (exit ${rc}): Ctrl-C on mpirun")
  expect(0 "resumed from ${WORK}/mpi_interrupted.safetensors" ${BIN}/haze-train-fmnist ${parallel_flags}
         --resume --checkpoint ${WORK}/mpi_interrupted.safetensors --steps 1000000 --minutes 0.01)
  # An error ends every rank (MPI_Abort), instead of leaving one waiting.
  execute_process(COMMAND timeout 60 ${MPIEXEC} -np 2 ${BIN}/haze-train-fmnist --data ${WORK}/nowhere
                          ${parallel_flags} --steps 1 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR rc EQUAL 124 OR NOT "${out}${err}" MATCHES "nowhere/train-images-idx3-ubyte")
    message(FATAL_ERROR "mpirun with a missing dataset: exit ${rc}\n${out}${err}")
  endif()
  message(STATUS "ok (exit ${rc}): mpirun with a missing dataset")
endif()
