import ConveyorCLI

/// The worker: Conveyor's command line (`run`, `check-config`, ...) with this package's handlers, which the
/// HandlerRegistryPlugin lists in `registeredHandlers`.
@main
enum Worker {
    static func main() async {
        await ConveyorCommand.main(handlers: registeredHandlers)
    }
}
