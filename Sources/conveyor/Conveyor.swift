import ConveyorCLI

/// The `conveyor` executable: the command line of `ConveyorCLI` with the handlers of the modules it depends on,
/// listed in `registeredHandlers` by the HandlerRegistryPlugin.
@main
enum Conveyor {
    static func main() async {
        await ConveyorCommand.main(handlers: registeredHandlers)
    }
}
