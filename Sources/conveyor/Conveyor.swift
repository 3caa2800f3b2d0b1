import ConveyorCLI
import StoreHandlers

/// The `conveyor` executable: the command line of `ConveyorCLI`, with the example store's handlers.
@main
enum Conveyor {
    static func main() async {
        await ConveyorCommand.main(handlers: storeHandlers)
    }
}
