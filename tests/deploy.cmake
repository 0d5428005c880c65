# tests/deploy.cmake: the deployment files (Dockerfile, deploy/) - label "deploy": the manifests
# agree with `gru-serve --help` and with each other; label "container": the image is built and
# run for real with podman (tests/deploy/container_test.sh; skipped, 77, without podman).
if(TARGET gru-serve)
  add_test(NAME deploy_manifests
           COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_manifests.py
                   --serve $<TARGET_FILE:gru-serve> --root ${CMAKE_SOURCE_DIR})
  set_tests_properties(deploy_manifests PROPERTIES LABELS deploy SKIP_RETURN_CODE 77 TIMEOUT 60
                       ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()

# About a minute with a warm base-image cache (4 on a fresh machine); it compiles in the image
# and downloads Debian packages, so it runs alone.
add_test(NAME container_image
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/container_test.sh --repo ${CMAKE_SOURCE_DIR})
set_tests_properties(container_image PROPERTIES LABELS container SKIP_RETURN_CODE 77 TIMEOUT 1200
                     RUN_SERIAL TRUE)

# deploy/k8s/deployment.yaml's pod spec run by `podman kube play` on the image (it builds its own):
# security context, env, probes, a request, SIGTERM (tests/deploy/kube_test.sh; skipped without
# podman). A few minutes; runs alone for the same reasons.
add_test(NAME container_kube
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/kube_test.sh --repo ${CMAKE_SOURCE_DIR})
set_tests_properties(container_kube PROPERTIES LABELS container SKIP_RETURN_CODE 77 TIMEOUT 1200
                     RUN_SERIAL TRUE)

# README.md's configuration table is generated from `gru-serve --help`: no drift.
add_test(NAME readme_config COMMAND ${GRU_PYTHON} ${CMAKE_SOURCE_DIR}/tools/config_table.py
         $<TARGET_FILE:gru-serve> --check ${CMAKE_SOURCE_DIR}/README.md)
set_tests_properties(readme_config PROPERTIES LABELS deploy)
