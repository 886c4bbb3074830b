# What `cmake --install` puts where, and the Debian packages CPack builds from it (scripts/package).
#
# Two components, two packages: speedcli (the client, its manual and completions) and speedsrv (the server, its
# manual, completions and the systemd unit). Someone who only wants to run tests gets no server.

find_program(GZIP_EXECUTABLE gzip REQUIRED)

# Manual pages, compressed as Debian installs them.
function(speed_install_manual page section component)
    set(output "${PROJECT_BINARY_DIR}/man/${page}.gz")
    add_custom_command(
        OUTPUT "${output}"
        COMMAND ${CMAKE_COMMAND} -E make_directory "${PROJECT_BINARY_DIR}/man"
        COMMAND ${GZIP_EXECUTABLE} -9 -n -c "${PROJECT_SOURCE_DIR}/dist/man/${page}" > "${output}"
        DEPENDS "${PROJECT_SOURCE_DIR}/dist/man/${page}"
        COMMENT "Compressing ${page}"
        VERBATIM)
    add_custom_target(manual_${page} ALL DEPENDS "${output}")
    install(FILES "${output}" DESTINATION "${CMAKE_INSTALL_MANDIR}/${section}" COMPONENT ${component})
endfunction()
speed_install_manual(speedcli.1 man1 client)
speed_install_manual(speedsrv.8 man8 server)

# Shell completions, where Debian's bash-completion and zsh look for them.
foreach(program speedcli speedsrv)
    if(program STREQUAL "speedcli")
        set(component client)
    else()
        set(component server)
    endif()
    install(FILES "${PROJECT_SOURCE_DIR}/dist/completion/${program}.bash"
            DESTINATION "${CMAKE_INSTALL_DATADIR}/bash-completion/completions" RENAME ${program}
            COMPONENT ${component})
    install(FILES "${PROJECT_SOURCE_DIR}/dist/completion/_${program}"
            DESTINATION "${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions" COMPONENT ${component})
endforeach()

# The systemd unit. dist/speedsrv.service names /usr/local/bin/speedsrv (for a manual install); the installed
# copy names the binary where this install put it, decided at install time (cmake --install --prefix, or the
# package's /usr).
install(CODE "
    set(unit_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
    file(READ \"${PROJECT_SOURCE_DIR}/dist/speedsrv.service\" unit)
    string(REPLACE \"/usr/local/bin/speedsrv\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/speedsrv\"
           unit \"\${unit}\")
    file(MAKE_DIRECTORY \"\${unit_dir}\")
    file(WRITE \"\${unit_dir}/speedsrv.service\" \"\${unit}\")
    message(STATUS \"Installing: \${unit_dir}/speedsrv.service\")
    list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${unit_dir}/speedsrv.service\")
" COMPONENT server)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME speedsuite)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "speedsuite maintainers <speedsuite@localhost>")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://localhost/speedsuite")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL client server)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies from the binaries themselves (dpkg-shlibdeps): libspdlog, libfmt, libssl's libcrypto.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME speedcli)
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME speedsrv)
set(CPACK_DEBIAN_CLIENT_PACKAGE_SECTION net)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION net)
set(CPACK_COMPONENT_CLIENT_DISPLAY_NAME "speedcli")
set(CPACK_COMPONENT_CLIENT_DESCRIPTION
    "network speed test client measured at the receiver\n speedcli measures download, upload, idle and loaded latency, responsiveness (RPM),\n and with --udp loss, jitter and reordering, against a speedsrv server. It also\n shows this host's own per-interface traffic (speedcli monitor).")
set(CPACK_COMPONENT_SERVER_DISPLAY_NAME "speedsrv")
set(CPACK_COMPONENT_SERVER_DESCRIPTION
    "network speed test server, safe to expose\n speedsrv serves speed tests to speedcli clients with caps and deadlines on\n everything a peer can ask for. The systemd unit is installed but not enabled:\n systemctl enable --now speedsrv starts it.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/dist/debian/speedsrv/postinst;${PROJECT_SOURCE_DIR}/dist/debian/speedsrv/prerm;${PROJECT_SOURCE_DIR}/dist/debian/speedsrv/postrm")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
